/*-------------------------------------------------------------------------
 *
 * privilege.c
 *		Who may kill sessions: the ALTER SYSTEM-equivalent privilege.
 *
 * Oracle asks for the ALTER SYSTEM system privilege.  Here that is
 * PostgreSQL's own ALTER SYSTEM privilege on the parameter name
 * "kill_session.kill" (superusers have it implicitly), so it is granted,
 * revoked, listed and dumped by PostgreSQL like any parameter privilege.
 * Oracle's spelling, GRANT ALTER SYSTEM TO role, parses in PostgreSQL as a
 * grant of a role named "alter system"; it is turned into the parameter
 * privilege here, unless a role of that name exists.
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
#include "utils/acl.h"

#include "kill_session.h"

/* The parameter whose ALTER SYSTEM privilege allows killing sessions. */
#define KS_PRIVILEGE_PARAMETER	"kill_session.kill"

bool
ks_may_kill(Oid roleid)
{
	if (superuser_arg(roleid))
		return true;
#if PG_VERSION_NUM >= 150000
	return pg_parameter_aclcheck(KS_PRIVILEGE_PARAMETER, roleid,
								 ACL_ALTER_SYSTEM) == ACLCHECK_OK;
#else
	/* No parameter privileges before PostgreSQL 15. */
	return false;
#endif
}

/*
 * If pstmt is exactly GRANT ALTER SYSTEM TO roles or REVOKE ALTER SYSTEM
 * FROM roles (one privilege, no other option), set *translated to the same
 * statement as a grant of ALTER SYSTEM ON PARAMETER kill_session.kill and
 * return true.  PostgreSQL then applies its own rules to it: who may grant,
 * which roles exist, and what REVOKE means.
 */
bool
ks_translate_grant(PlannedStmt *pstmt, PlannedStmt **translated)
{
#if PG_VERSION_NUM >= 150000
	GrantRoleStmt *grs;
	AccessPriv *priv;
	GrantStmt  *gs;
	PlannedStmt *copy;

	if (!IsA(pstmt->utilityStmt, GrantRoleStmt))
		return false;
	grs = (GrantRoleStmt *) pstmt->utilityStmt;
	if (list_length(grs->granted_roles) != 1 || grs->grantor != NULL)
		return false;
#if PG_VERSION_NUM >= 160000
	if (grs->opt != NIL)
		return false;
#else
	if (grs->admin_opt)
		return false;
#endif
	priv = linitial_node(AccessPriv, grs->granted_roles);
	if (priv->priv_name == NULL || strcmp(priv->priv_name, "alter system") != 0 ||
		priv->cols != NIL)
		return false;
	/* A real role of that name is granted as PostgreSQL always would. */
	if (OidIsValid(get_role_oid(priv->priv_name, true)))
		return false;

	gs = makeNode(GrantStmt);
	gs->is_grant = grs->is_grant;
	gs->targtype = ACL_TARGET_OBJECT;
	gs->objtype = OBJECT_PARAMETER_ACL;
	gs->objects = list_make1(makeString(pstrdup(KS_PRIVILEGE_PARAMETER)));
	gs->privileges = list_make1(priv);
	gs->grantees = grs->grantee_roles;
	gs->grant_option = false;
	gs->grantor = NULL;
	gs->behavior = grs->behavior;

	copy = makeNode(PlannedStmt);
	memcpy(copy, pstmt, sizeof(PlannedStmt));
	copy->utilityStmt = (Node *) gs;
	*translated = copy;
	return true;
#else
	return false;
#endif
}
