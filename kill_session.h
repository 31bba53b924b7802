/*-------------------------------------------------------------------------
 *
 * kill_session.h
 *		Declarations shared by the parts of kill_session.
 *
 * kill_session.c	module init, settings, hook wiring
 * registry.c		client session IDs in shared memory
 * processlist.c	the process list (view processlist, SHOW PROCESSLIST)
 * kill.c			kill_session() and the kill itself
 * selfkill.c		ending the caller's own session after its statement
 * privilege.c		who may kill, and the Oracle GRANT ALTER SYSTEM form
 * oracle.c			SHOW PROCESSLIST rewrite and the HINT for the Oracle
 *					statement
 * session_id.c		the pure parser of the session string
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  kill_session.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KILL_SESSION_H
#define KILL_SESSION_H

#include "compat.h"
#include "datatype/timestamp.h"
#include "libpq/libpq-be.h"
#include "nodes/parsenodes.h"
#include "parser/parse_node.h"
#include "nodes/plannodes.h"
#include "storage/lwlock.h"
#include "utils/elog.h"

/* Longest "address:port" text kept for a session. */
#define KS_HOST_LEN		64

/*
 * One registry slot per PGPROC, indexed by pgprocno.  A slot is in use while
 * pid != 0.  The owning backend fills it once authenticated and clears it
 * in its own on_shmem_exit callback; all of it is read and written under the
 * registry lock.
 */
typedef struct KsSlot
{
	pid_t		pid;			/* owning backend, 0 when free */
	uint32		sid;			/* client session ID */
	TimestampTz connect_time;	/* when the slot was filled */
	NameData	user_name;		/* role the session authenticated as */
	NameData	db_name;		/* database it connected to */
	char		host[KS_HOST_LEN];	/* "address:port" or "localhost" */

	/* Written by a killer before it signals; read by the dying backend. */
	bool		killed;
	uint32		killer_sid;		/* 0 when the killer has no session ID */
	int			killer_pid;
	NameData	killer_role;
} KsSlot;

typedef struct KsShared
{
	LWLock	   *lock;			/* protects everything below */
	uint32		next_sid;		/* next ID to hand out */
	bool		wrapped;		/* next_sid has passed 4294967295 */
	int			nslots;
	KsSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} KsShared;

/* kill_session.c */
extern int	ks_wait_timeout;
extern void ks_check_loaded(void);

/* registry.c */
extern KsShared *ks_shared;
extern uint32 ks_my_sid;
extern Size ks_shmem_size(void);
extern void ks_shmem_init(void);
extern void ks_register_session(Port *port);
extern int	ks_find_slot_locked(uint32 sid);
extern KsSlot *ks_my_slot(void);

/* kill.c */
extern bool ks_kill_session(uint32 sid);
extern void ks_add_kill_detail(ErrorData *edata);

/* selfkill.c */
extern void ks_self_kill_arm(void);

/* privilege.c */
extern void ks_define_privilege_parameter(void);
extern void ks_check_alter_system(AlterSystemStmt *stmt);
extern bool ks_may_kill(Oid roleid);
extern bool ks_translate_grant(PlannedStmt *pstmt, const char *queryString,
							   PlannedStmt **translated);

/* oracle.c */
extern void ks_rewrite_show(Query *query);
extern void ks_analyze_show_text(ParseState *pstate, Query *query);
extern void ks_show_before_execute(PlannedStmt *pstmt, const char *queryString);
extern bool ks_show_may_discard(Node *stmt);
extern void ks_show_after_discard(void);
extern void ks_add_oracle_hint(ErrorData *edata);

#endif							/* KILL_SESSION_H */
