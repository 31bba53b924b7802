/*-------------------------------------------------------------------------
 *
 * node_option.c
 *		Whom a call to another node may trust, and where each of its
 *		connection options may come from.
 *
 * The rules are postgres_fdw's and dblink's:
 *
 * - The server is one that the directory's owner chose: it belongs to a
 *	 superuser or to the directory's owner, and its wrapper validates its
 *	 options.
 * - Options come from their place, whatever the wrapper (dblink's rule):
 *	 the user and secrets only from the calling role's user mapping,
 *	 everything else only from the server.
 * - A non-superuser's mapping must hold a password that the node asks
 *	 for, unless postgres_fdw's own validator (which makes it
 *	 superuser-only) let password_required be false.
 *
 * The options also carry on whose behalf the call comes
 * (kill_session.origin), in the startup packet of the connection.
 *
 * This file owns those rules and the call's option list.  It must not
 * connect, send or wait: it fails a call (node_answer.c) and the call
 * machine (node_call.c) does the rest.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  node_option.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "kill_session.h"
#include "node_answer.h"
#include "node_option.h"

/*
 * Whether fdw's validator is postgres_fdw's own, the one that lets only a
 * superuser set password_required in a user mapping: a C function
 * postgres_fdw_validator of $libdir/postgres_fdw (only a superuser can
 * make a C function).
 */
static bool
ks_postgres_fdw_validator(const ForeignDataWrapper *fdw)
{
	HeapTuple	tuple;
	bool		is_it = false;

	if (!OidIsValid(fdw->fdwvalidator))
		return false;
	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fdw->fdwvalidator));
	if (!HeapTupleIsValid(tuple))
		return false;
	if (((Form_pg_proc) GETSTRUCT(tuple))->prolang == ClanguageId)
	{
		bool		isnull_src;
		bool		isnull_bin;
		Datum		src = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_prosrc,
										  &isnull_src);
		Datum		bin = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_probin,
										  &isnull_bin);

		is_it = !isnull_src && !isnull_bin &&
			strcmp(TextDatumGetCString(src), "postgres_fdw_validator") == 0 &&
			strcmp(TextDatumGetCString(bin), "$libdir/postgres_fdw") == 0;
	}
	ReleaseSysCache(tuple);
	return is_it;
}

/*
 * Whether a user mapping's password_required is on.  It is off only where
 * postgres_fdw's validator checked it; any other wrapper's mapping could
 * have been written by the role that uses it.
 */
static bool
ks_password_required(const ForeignDataWrapper *fdw, const UserMapping *user)
{
	ListCell   *cell;

	if (!ks_postgres_fdw_validator(fdw))
		return true;
	foreach(cell, user->options)
	{
		DefElem    *def = lfirst(cell);

		if (strcmp(def->defname, "password_required") == 0)
			return defGetBoolean(def);
	}
	return true;
}

/* Where a connection option may come from. */
typedef enum KsOptionPlace
{
	KS_OPTION_NOT_LIBPQ,		/* not libpq's, or one the call sets itself:
								 * left alone */
	KS_OPTION_SERVER,			/* only from the server */
	KS_OPTION_MAPPING,			/* only from the user mapping */
	KS_OPTION_SERVER_OR_SUPERUSER	/* from the server, or from a superuser's
									 * user mapping */
} KsOptionPlace;

/*
 * Where keyword may come from: dblink's rule, whatever the wrapper.  The
 * user and every secret libpq hides (password, sslpassword...) belong to
 * a user mapping; the client certificate, its key and the key's password
 * name files of this server, which only a superuser may choose for
 * herself; everything else (host, port, dbname, sslmode, passfile...)
 * belongs to the server, so that a role cannot redirect her own calls.
 */
static KsOptionPlace
ks_option_place(const PQconninfoOption *options, const char *keyword)
{
	const PQconninfoOption *opt;

	if (strcmp(keyword, "fallback_application_name") == 0 ||
		strcmp(keyword, "client_encoding") == 0)
		return KS_OPTION_NOT_LIBPQ;
	if (strcmp(keyword, "sslcert") == 0 || strcmp(keyword, "sslkey") == 0 ||
		strcmp(keyword, "sslpassword") == 0)
		return KS_OPTION_SERVER_OR_SUPERUSER;
	for (opt = options; opt->keyword != NULL; opt++)
	{
		if (strcmp(opt->keyword, keyword) != 0)
			continue;
		if (strchr(opt->dispchar, 'D') != NULL)
			return KS_OPTION_NOT_LIBPQ;
		if (strcmp(keyword, "user") == 0 || strchr(opt->dispchar, '*') != NULL)
			return KS_OPTION_MAPPING;
		return KS_OPTION_SERVER;
	}
	return KS_OPTION_NOT_LIBPQ;
}

/* The owner of the directory, kill_session_nodes in fn's schema. */
static Oid
ks_directory_owner(Oid fn)
{
	Oid			relid = get_relname_relid("kill_session_nodes",
										  get_func_namespace(fn));
	HeapTuple	tuple;
	Oid			owner;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Add the call's origin to its connection's startup options, after the
 * server's own "options" if it has any: -c kill_session.origin=..., with a
 * backslash before every space and backslash, as the server splits them.
 * The node takes it only there (PGC_BACKEND), once for the connection's
 * life.  There is room for one more option.
 */
static void
ks_call_add_origin(KsNodeCall *call)
{
	StringInfoData buf;
	const char *p;
	int			i;

	initStringInfo(&buf);
	for (i = 0; call->keywords[i] != NULL; i++)
	{
		if (strcmp(call->keywords[i], "options") == 0)
			appendStringInfo(&buf, "%s ", call->options[i]);
	}
	appendStringInfoString(&buf, "-c kill_session.origin=");
	for (p = call->origin; *p != '\0'; p++)
	{
		if (*p == '\\' || isspace((unsigned char) *p))
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *p);
	}
	for (i = 0; call->keywords[i] != NULL; i++)
	{
		if (strcmp(call->keywords[i], "options") == 0)
		{
			call->options[i] = buf.data;
			return;
		}
	}
	call->keywords[i] = "options";
	call->options[i] = buf.data;
	call->keywords[i + 1] = NULL;
	call->options[i + 1] = NULL;
}

/*
 * The libpq options of a call from server and user mapping, each from its
 * place; false, with the call failed, if one is out of place.
 */
static bool
ks_call_options(KsNodeCall *call, const ForeignServer *server,
				const UserMapping *user, bool *has_password)
{
	static PQconninfoOption *libpq_options = NULL;
	bool		superuser_mapping = OidIsValid(user->userid) &&
		superuser_arg(user->userid);
	int			nopts = list_length(server->options) + list_length(user->options);
	int			n = 0;
	ListCell   *cell;

	if (libpq_options == NULL)
	{
		libpq_options = PQconndefaults();
		if (libpq_options == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
	}
	call->keywords = palloc(sizeof(char *) * (nopts + 5));
	call->options = palloc(sizeof(char *) * (nopts + 5));
	*has_password = false;
	foreach(cell, list_concat_copy(server->options, user->options))
	{
		DefElem    *def = lfirst(cell);
		bool		in_mapping = foreach_current_index(cell) >=
			list_length(server->options);
		KsOptionPlace place = ks_option_place(libpq_options, def->defname);

		if (place == KS_OPTION_NOT_LIBPQ)
			continue;
		if (in_mapping ? (place == KS_OPTION_SERVER ||
						  (place == KS_OPTION_SERVER_OR_SUPERUSER && !superuser_mapping)) :
			place == KS_OPTION_MAPPING)
		{
			ks_call_fail(call, ERRCODE_FDW_INVALID_OPTION_NAME,
						 in_mapping ?
						 psprintf("option \"%s\" is not allowed in a user mapping of node %d's foreign server \"%s\"",
								  def->defname, call->node, server->servername) :
						 psprintf("option \"%s\" is not allowed in node %d's foreign server \"%s\"",
								  def->defname, call->node, server->servername),
						 pstrdup("A user mapping gives the user, the password and other secrets; "
								 "sslcert, sslkey and sslpassword only in a superuser's mapping. "
								 "The server gives everything else."),
						 in_mapping ?
						 psprintf("Set it in foreign server \"%s\".", server->servername) :
						 psprintf("Set it in the user mappings of foreign server \"%s\".",
								  server->servername));
			return false;
		}
		call->keywords[n] = def->defname;
		call->options[n] = defGetString(def);
		if (strcmp(def->defname, "password") == 0 && call->options[n][0] != '\0')
			*has_password = true;
		n++;
	}
	call->keywords[n] = "fallback_application_name";
	call->options[n++] = "kill_session";
	call->keywords[n] = "client_encoding";
	call->options[n++] = GetDatabaseEncodingName();
	call->keywords[n] = NULL;
	call->options[n] = NULL;
	ks_call_add_origin(call);
	return true;
}

/* The value of a connection option, or NULL. */
const char *
ks_call_option(const KsNodeCall *call, const char *keyword)
{
	int			i;

	for (i = 0; call->keywords[i] != NULL; i++)
	{
		if (strcmp(call->keywords[i], keyword) == 0)
			return call->options[i];
	}
	return NULL;
}

/* Add a connection option (there is room for one more). */
void
ks_call_add_option(KsNodeCall *call, const char *keyword, const char *value)
{
	int			i;

	for (i = 0; call->keywords[i] != NULL; i++)
		;
	call->keywords[i] = keyword;
	call->options[i] = value;
	call->keywords[i + 1] = NULL;
	call->options[i + 1] = NULL;
}

/* Set a connection option that the call has. */
void
ks_call_set_option(KsNodeCall *call, const char *keyword, const char *value)
{
	int			i;

	for (i = 0; call->keywords[i] != NULL; i++)
	{
		if (strcmp(call->keywords[i], keyword) == 0)
			call->options[i] = value;
	}
}

/* This session as the origin of a call forwarded to another node. */
static char *
ks_my_origin(void)
{
	uint32		sid = ks_my_session_id();

	return psprintf("%d " INT64_FORMAT " %d %s", ks_node_id(),
					sid != 0 ? ks_global_id(sid) : 0, MyProcPid,
					GetUserNameFromId(GetUserId(), false));
}

/*
 * Check the call's foreign server and the calling role's user mapping, and
 * take the call's connection options from them, each from its place: the
 * call's server, role and mapping, origin and options are set.  False,
 * with the call failed, if either may not be trusted.
 */
bool
ks_call_trusted_options(KsNodeCall *call)
{
	ForeignServer *server;
	ForeignDataWrapper *fdw;
	UserMapping *user;
	Oid			userid = GetUserId();
	Oid			owner;
	bool		has_password;

	server = GetForeignServerByName(call->server, true);
	if (server == NULL)
	{
		ks_call_fail(call, ERRCODE_UNDEFINED_OBJECT,
					 psprintf("foreign server \"%s\" of node %d does not exist",
							  call->server, call->node),
					 NULL,
					 pstrdup("Create it, or name node's server in kill_session_nodes."));
		return false;
	}

	/* Who is called is who the directory's owner chose. */
	owner = ks_directory_owner(call->fn);
	if (server->owner != owner && !superuser_arg(server->owner))
	{
		ks_call_fail(call, ERRCODE_INSUFFICIENT_PRIVILEGE,
					 psprintf("foreign server \"%s\" of node %d is owned by role \"%s\"",
							  server->servername, call->node,
							  GetUserNameFromId(server->owner, false)),
					 psprintf("A node's server must be owned by a superuser or by the owner of kill_session_nodes, role \"%s\".",
							  GetUserNameFromId(owner, false)),
					 psprintf("ALTER SERVER %s OWNER TO %s;",
							  quote_identifier(server->servername),
							  quote_identifier(GetUserNameFromId(owner, false))));
		return false;
	}

	/*
	 * A wrapper without a validator lets anybody with USAGE on it put any
	 * option anywhere.
	 */
	fdw = GetForeignDataWrapper(server->fdwid);
	if (!OidIsValid(fdw->fdwvalidator))
	{
		ks_call_fail(call, ERRCODE_FDW_INVALID_OPTION_NAME,
					 psprintf("foreign server \"%s\" of node %d has no option validator",
							  server->servername, call->node),
					 pstrdup("Its foreign-data wrapper does not check its options and user mappings."),
					 pstrdup("Use a server of postgres_fdw or dblink_fdw."));
		return false;
	}
	if (ks_server_aclcheck(server->serverid, userid) != ACLCHECK_OK)
	{
		ks_call_fail(call, ERRCODE_INSUFFICIENT_PRIVILEGE,
					 psprintf("permission denied for foreign server %s",
							  server->servername),
					 NULL, NULL);
		return false;
	}
	if (!SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(userid),
							   ObjectIdGetDatum(server->serverid)) &&
		!SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							   ObjectIdGetDatum(server->serverid)))
	{
		ks_call_fail(call, ERRCODE_UNDEFINED_OBJECT,
					 psprintf("user mapping not found for user \"%s\", server \"%s\"",
							  GetUserNameFromId(userid, false),
							  server->servername),
					 NULL,
					 psprintf("Create a user mapping for the role on server \"%s\".",
							  server->servername));
		return false;
	}
	user = GetUserMapping(userid, server->serverid);
	call->origin = ks_my_origin();
	if (!ks_call_options(call, server, user, &has_password))
		return false;

	/*
	 * A non-superuser must not connect as this server's operating system
	 * user.
	 */
	call->password_required = !superuser_arg(userid) &&
		ks_password_required(fdw, user);
	if (call->password_required && !has_password)
	{
		ks_call_fail(call, ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED,
					 pstrdup("password is required"),
					 pstrdup("Non-superusers must provide a password in the user mapping."),
					 NULL);
		return false;
	}
	call->serverid = server->serverid;
	call->userid = userid;
	call->umid = user->umid;
	return true;
}
