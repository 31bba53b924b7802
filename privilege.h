/*-------------------------------------------------------------------------
 *
 * privilege.h
 *		Who may kill sessions: the ALTER SYSTEM-equivalent privilege.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  privilege.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_PRIVILEGE_H
#define KS_PRIVILEGE_H

struct AlterSystemStmt;
struct PlannedStmt;

/* The parameter whose ALTER SYSTEM privilege allows killing sessions. */
#define KS_PRIVILEGE_PARAMETER	"kill_session.kill"

extern void ks_define_privilege_parameter(void);
extern void ks_check_alter_system(struct AlterSystemStmt *stmt);
extern bool ks_may_kill(Oid roleid);
extern bool ks_translate_grant(struct PlannedStmt *pstmt, const char *queryString,
							   struct PlannedStmt **translated);

#endif							/* KS_PRIVILEGE_H */
