/*-------------------------------------------------------------------------
 *
 * privilege.c
 *		Who may kill sessions: the ALTER SYSTEM-equivalent privilege.
 *
 * Oracle asks for the ALTER SYSTEM system privilege.  Here that is
 * PostgreSQL's own ALTER SYSTEM privilege on the parameter name
 * "kill_session.kill" (superusers have it implicitly), so it is granted,
 * revoked, listed and dumped by PostgreSQL like any parameter privilege.
 *
 * kill_session.kill is defined as a setting that holds nothing.  From
 * PostgreSQL 16 on, GRANT ... ON PARAMETER accepts a name only if it is a
 * defined setting or an assignable custom name, and the reserved prefix
 * "kill_session" makes the name unassignable; defined, it is accepted on
 * every version under the same name, so a dump of one version restores on
 * another.  It is PGC_INTERNAL: no SET, no configuration file, and no ALTER
 * SYSTEM can write it, so its privilege never lets anyone write
 * postgresql.auto.conf.
 * Oracle's spelling, GRANT ALTER SYSTEM TO role, parses in PostgreSQL as a
 * grant of a role named "alter system"; it is turned into the parameter
 * privilege here.
 *
 * A leaf: it calls nothing of the project but sql_scan.c.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  privilege.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/plannodes.h"
#include "parser/parser.h"
#include "utils/acl.h"
#include "utils/guc.h"

#include "compat.h"
#include "privilege.h"
#include "sql_scan.h"

/* The value of kill_session.kill: always empty. */
static char *ks_kill_parameter_value = NULL;

/* Define kill_session.kill.  Called from _PG_init. */
void
ks_define_privilege_parameter(void)
{
	DefineCustomStringVariable(KS_PRIVILEGE_PARAMETER,
							   "Names the privilege to kill sessions; holds no setting.",
							   "Roles granted ALTER SYSTEM on this parameter may run kill_session(). "
							   "It cannot be set.",
							   &ks_kill_parameter_value,
							   "",
							   PGC_INTERNAL,
							   GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE |
							   GUC_DISALLOW_IN_AUTO_FILE,
							   NULL, NULL, NULL);
}

/*
 * ALTER SYSTEM SET / RESET kill_session.kill: PostgreSQL refuses it for a
 * PGC_INTERNAL setting; refuse it first with the reason.
 */
void
ks_check_alter_system(AlterSystemStmt *stmt)
{
	const char *name = stmt->setstmt->name;

	if (name != NULL && pg_strcasecmp(name, KS_PRIVILEGE_PARAMETER) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CANT_CHANGE_RUNTIME_PARAM),
				 errmsg("parameter \"%s\" cannot be changed", KS_PRIVILEGE_PARAMETER),
				 errdetail("It holds no setting: it names the privilege to kill sessions."),
				 errhint("Use GRANT ALTER SYSTEM ON PARAMETER %s TO role.",
						 KS_PRIVILEGE_PARAMETER)));
}

bool
ks_may_kill(Oid roleid)
{
	if (superuser_arg(roleid))
		return true;
	return pg_parameter_aclcheck(KS_PRIVILEGE_PARAMETER, roleid,
								 ACL_ALTER_SYSTEM) == ACLCHECK_OK;
}

/*
 * Whether the GRANT or REVOKE in the statement's text spells its privilege
 * as the keywords ALTER SYSTEM, Oracle's form, rather than as the quoted
 * role name "alter system": both parse into the same tree.
 */
static bool
ks_spelled_as_keywords(const char *query, int location, int len)
{
	KsScanner	scanner;
	KsToken		token;

	if (!ks_scan_init_statement(&scanner, query, location, len,
								standard_conforming_strings))
		return false;
	ks_scan_next(&scanner, &token);
	if (!ks_token_is(&scanner, &token, "grant") &&
		!ks_token_is(&scanner, &token, "revoke"))
		return false;
	ks_scan_next(&scanner, &token);
	/* REVOKE { ADMIN | INHERIT | SET } OPTION FOR ... */
	if (ks_token_is(&scanner, &token, "admin") ||
		ks_token_is(&scanner, &token, "inherit") ||
		ks_token_is(&scanner, &token, "set"))
	{
		ks_scan_next(&scanner, &token);
		if (!ks_token_is(&scanner, &token, "option"))
			return false;
		ks_scan_next(&scanner, &token);
		if (!ks_token_is(&scanner, &token, "for"))
			return false;
		ks_scan_next(&scanner, &token);
	}
	return ks_token_is(&scanner, &token, "alter");
}

/*
 * If pstmt is Oracle's GRANT ALTER SYSTEM TO roles or REVOKE ALTER SYSTEM
 * FROM roles (one privilege, spelled as keywords), set *translated to the
 * same statement as a grant of ALTER SYSTEM ON PARAMETER kill_session.kill
 * and return true.  PostgreSQL then applies its own rules to it: who may
 * grant, which roles exist, and what REVOKE means.  The quoted role name
 * "alter system" is a role grant, left to PostgreSQL.  The Oracle form
 * never silently does something else: if a role named "alter system"
 * exists, or role options are given, it fails and says what to write.
 */
bool
ks_translate_grant(PlannedStmt *pstmt, const char *queryString,
				   PlannedStmt **translated)
{
	GrantRoleStmt *grs;
	AccessPriv *priv;
	GrantStmt  *gs;
	PlannedStmt *copy;
	const char *verb;
	const char *option;

	if (!IsA(pstmt->utilityStmt, GrantRoleStmt))
		return false;
	grs = (GrantRoleStmt *) pstmt->utilityStmt;
	if (list_length(grs->granted_roles) != 1)
		return false;
	priv = linitial_node(AccessPriv, grs->granted_roles);
	if (priv->priv_name == NULL || strcmp(priv->priv_name, "alter system") != 0 ||
		priv->cols != NIL)
		return false;
	if (!ks_spelled_as_keywords(queryString, pstmt->stmt_location,
								pstmt->stmt_len))
		return false;
	verb = grs->is_grant ? "GRANT" : "REVOKE";

	if (OidIsValid(get_role_oid(priv->priv_name, true)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_GRANT_OPERATION),
				 errmsg("%s ALTER SYSTEM is ambiguous: a role named \"alter system\" exists",
						verb),
				 errdetail("It could mean the ALTER SYSTEM privilege to kill sessions, or membership in the role \"alter system\"."),
				 errhint("For the privilege write %s ALTER SYSTEM ON PARAMETER %s %s role; for the role write %s \"alter system\" %s role.",
						 verb, KS_PRIVILEGE_PARAMETER, grs->is_grant ? "TO" : "FROM",
						 verb, grs->is_grant ? "TO" : "FROM")));

	option = ks_grant_role_option(grs);
	if (option != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_GRANT_OPERATION),
				 grs->is_grant ?
				 errmsg("GRANT ALTER SYSTEM ... WITH %s OPTION is not supported", option) :
				 errmsg("REVOKE %s OPTION FOR ALTER SYSTEM is not supported", option),
				 errdetail("GRANT ALTER SYSTEM gives PostgreSQL's ALTER SYSTEM privilege on parameter %s; the right to pass it on is its grant option.",
						   KS_PRIVILEGE_PARAMETER),
				 grs->is_grant ?
				 errhint("Write GRANT ALTER SYSTEM ON PARAMETER %s TO role WITH GRANT OPTION.",
						 KS_PRIVILEGE_PARAMETER) :
				 errhint("Write REVOKE GRANT OPTION FOR ALTER SYSTEM ON PARAMETER %s FROM role.",
						 KS_PRIVILEGE_PARAMETER)));

	gs = makeNode(GrantStmt);
	gs->is_grant = grs->is_grant;
	gs->targtype = ACL_TARGET_OBJECT;
	gs->objtype = OBJECT_PARAMETER_ACL;
	gs->objects = list_make1(makeString(pstrdup(KS_PRIVILEGE_PARAMETER)));
	gs->privileges = list_make1(priv);
	gs->grantees = grs->grantee_roles;
	gs->grant_option = false;
	gs->grantor = grs->grantor;
	gs->behavior = grs->behavior;

	copy = makeNode(PlannedStmt);
	memcpy(copy, pstmt, sizeof(PlannedStmt));
	copy->utilityStmt = (Node *) gs;
	*translated = copy;
	return true;
}
