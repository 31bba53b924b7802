/*-------------------------------------------------------------------------
 *
 * action.c
 *		What every action on a session shares: the session argument and
 *		where it leads, the privilege, the aim, the mark, the log line, and
 *		the DETAIL the session is told.
 *
 * Every SQL function aimed at one session starts with ks_session_arg(): it
 * parses the session string and, for a session of another node, runs the
 * whole call on that node (forward.c) and hands back its result.  What
 * stays here is then a session of this server, named by its local ID.
 *
 * This file owns what the actions share.  It must not call the files of
 * the actions (kill.c, disconnect.c, cancel.c) nor of the lists: they call
 * it.  It reaches another node only through forward.c, and passes
 * kill_session.wait_timeout along in the call.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  action.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "commands/defrem.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "kill_session.h"
#include "privilege.h"
#include "session_id.h"

/*
 * kill_session.origin: on whose behalf this session says it acts, "node
 * session_id pid role".  node_option.c gives it in the startup packet of the
 * connections it opens to other nodes; empty otherwise.  It can be given
 * only at connection start (PGC_BACKEND), so nothing that runs inside a
 * session, a SET, a function's SET clause or an injected set_config(), can
 * change it; but any client can give one in its own startup packet, so it
 * is only ever a claim of the session that gave it (ks_origin_vouched).
 */
static char *ks_origin = NULL;

/* kill_session.wait_timeout, in milliseconds */
static int	ks_wait_timeout = 5000;

static bool ks_origin_vouched(const KsKiller *k);

/*
 * Text written in another database, as this one can hold it: a caller's
 * reason, or a session's statement, is in the encoding of the database it
 * came from.  A byte that is no valid character here becomes '?', so the
 * text is printed, never refused for its encoding, and never printed
 * invalid.  Returns p itself when it is valid as it is.
 */
char *
ks_valid_text(const char *p)
{
	int			len = strlen(p);
	char	   *out;
	int			n = 0;

	if (pg_verifymbstr(p, len, true))
		return unconstify(char *, p);
	out = palloc(len + 1);
	while (len > 0)
	{
		int			l = pg_encoding_verifymbchar(GetDatabaseEncoding(), p, len);

		if (l <= 0)
		{
			out[n++] = '?';
			l = 1;
		}
		else
		{
			memcpy(&out[n], p, l);
			n += l;
		}
		p += l;
		len -= l;
	}
	out[n] = '\0';
	return out;
}

/*
 * Parse an origin into k's origin fields; false if it is not one.  Empty
 * is no origin.
 */
static bool
ks_parse_origin(const char *origin, KsKiller *k)
{
	const char *p = origin;
	char	   *end;
	long		node;
	long long	sid;
	long		pid;

	k->origin_pid = 0;
	if (origin == NULL || origin[0] == '\0')
		return true;
	errno = 0;
	node = strtol(p, &end, 10);
	if (end == p || *end != ' ' || node < 0 || node > KS_NODE_MAX)
		return false;
	p = end + 1;
	sid = strtoll(p, &end, 10);
	if (end == p || *end != ' ' || sid < 0 || errno != 0)
		return false;
	p = end + 1;
	pid = strtol(p, &end, 10);
	if (end == p || *end != ' ' || pid <= 0 || pid > INT_MAX)
		return false;
	p = end + 1;
	if (*p == '\0' || strlen(p) >= NAMEDATALEN)
		return false;
	k->origin_node = (int) node;
	k->origin_sid = sid;
	k->origin_pid = (int) pid;
	namestrcpy(&k->origin_role, ks_valid_text(p));
	k->origin_vouched = false;
	return true;
}

static bool
ks_check_origin(char **newval, void **extra, GucSource source)
{
	KsKiller	k;

	if (ks_parse_origin(*newval, &k))
		return true;
	GUC_check_errdetail("It must be \"node session_id pid role\".");
	return false;
}

/*
 * A name as the LOG lines and DETAILs print it: in double quotes, with a
 * double quote, a backslash and every control character escaped, C-style.
 * A role's name may hold any of them, and a claimed origin's role part is
 * any text its client chose: printed raw, a quote and a newline would let
 * it forge the rest of the line, or a line of its own on the client of the
 * session it ends.
 */
char *
ks_quote_name(const char *name)
{
	StringInfoData buf;
	const unsigned char *p;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '"');
	for (p = (const unsigned char *) name; *p != '\0'; p++)
	{
		switch (*p)
		{
			case '"':
				appendStringInfoString(&buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(&buf, "\\\\");
				break;
			case '\n':
				appendStringInfoString(&buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(&buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(&buf, "\\t");
				break;
			default:
				if (*p < 0x20 || *p == 0x7f)
					appendStringInfo(&buf, "\\x%02x", *p);
				else
					appendStringInfoChar(&buf, (char) *p);
		}
	}
	appendStringInfoChar(&buf, '"');
	return buf.data;
}

void
ks_define_action_settings(void)
{
	DefineCustomIntVariable("kill_session.wait_timeout",
							"Sets how long kill_session() waits for the killed session to end.",
							"After this many milliseconds kill_session() returns with a warning that the "
							"session is marked for kill. Zero means do not wait.",
							&ks_wait_timeout,
							5000,
							0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable("kill_session.origin",
							   "Says on whose behalf this session acts on sessions.",
							   "Given by kill_session at the start of the sessions it opens on other nodes "
							   "of a cluster: the calling node, session ID, process ID and role, for the "
							   "node's LOG lines and the ended session's DETAIL, as the calling session "
							   "claims them. It can be set only at connection start.",
							   &ks_origin,
							   "",
							   PGC_BACKEND,
							   GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   ks_check_origin, NULL, NULL);
}

/*
 * kill_session.wait_timeout, in milliseconds: how long every action waits
 * for its session, here and, passed on, on another node.
 */
int
ks_wait_timeout_ms(void)
{
	return ks_wait_timeout;
}

void
ks_report_missing(uint32 sid)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("session ID " INT64_FORMAT " does not exist",
					ks_global_id(sid))));
}

void
ks_report_invalid(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("missing or invalid session ID"),
			 errhint("Give the session as 'session_id', 'session_id, serial#' or 'session_id, serial#, @node', with the ID from SHOW PROCESSLIST.")));
}

/*
 * The node that holds session id: 0 for this server, else another node's
 * number.  An invalid ID, and on a node of a cluster an ID that carries no
 * node, is 22023: there it could name a session of any node.
 */
int
ks_id_home(int64 id)
{
	int			node;

	if (!ks_id_valid(id))
		ks_report_invalid();
	node = ks_id_node(id);
	if (node == ks_node_id())
		return 0;
	if (node == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("session ID " INT64_FORMAT " carries no node", id),
				 errdetail("This server is node %d of a cluster, whose session IDs are node * 10000000000 + local ID.",
						   ks_node_id()),
				 errhint("Give the ID as SHOW PROCESSLIST lists it, such as " INT64_FORMAT ", or as '" INT64_FORMAT ", serial#, @node'.",
						 ks_global_id((uint32) id), id)));
	return node;
}

/*
 * The foreign server of another node's session, or the error that says
 * where the session is.
 */
char *
ks_node_of_session(Oid fn, int64 id)
{
	int			node = ks_id_node(id);
	char	   *server = ks_node_server(fn, node);

	if (server == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("session " INT64_FORMAT " is on node %d", id, node),
				 ks_node_id() == 0 ?
				 errdetail("This server is not a node of a cluster (kill_session.node_id is 0).") :
				 errdetail("This server is node %d; kill_session_nodes names no foreign server for node %d.",
						   ks_node_id(), node),
				 errhint("Run the statement on node %d, or add the node to kill_session_nodes.",
						 node)));
	return server;
}

/*
 * Run this call on the node of session id, with the row of what it is on
 * record here: the node answered true (done), false (not done), NULL or
 * 08007 (unknown), or refused with an error; the node writes its own row.
 */
static Datum
ks_forward_recorded(FunctionCallInfo fcinfo, int argno, int64 id,
					const char *session, const char *what,
					KsHistAction action, const char *reason)
{
	MemoryContext context = CurrentMemoryContext;
	char	   *server = ks_node_of_session(fcinfo->flinfo->fn_oid, id);
	KsKiller	me;
	Datum		result;

	ks_actor(reason, &me);
	ks_record_begin_forwarded(action, id, ks_id_node(id), &me);
	PG_TRY();
	{
		result = ks_forward_call(fcinfo, argno, id, session, server, what,
								 ks_wait_timeout_ms());
	}
	PG_CATCH();
	{
		ks_record_error(&me, action, false, true, context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	ks_record_end(&me, action,
				  fcinfo->isnull ? KS_O_UNKNOWN :
				  DatumGetBool(result) ? KS_O_DONE : KS_O_NOT_DONE,
				  psprintf("node %d answered %s", ks_id_node(id),
						   fcinfo->isnull ? "NULL" :
						   DatumGetBool(result) ? "true" : "false"));
	return result;
}

/*
 * The session argument at argno, parsed: the ID it names, with its node
 * (ks_id_home() says whether it is another node's).  With has_sql_id, a
 * SQL_ID at its end, as for ks_session_arg().
 */
int64
ks_session_id_arg(FunctionCallInfo fcinfo, int argno, bool *has_sql_id,
				  int64 *sql_id)
{
	text	   *arg = PG_ARGISNULL(argno) ? NULL : PG_GETARG_TEXT_PP(argno);
	KsSessionRef ref;
	size_t		len;
	int64_t		query_id = 0;

	if (arg == NULL)
		ks_report_invalid();
	len = VARSIZE_ANY_EXHDR(arg);
	if (has_sql_id != NULL)
	{
		switch (ks_split_sql_id(VARDATA_ANY(arg), len, &len, &query_id))
		{
			case KS_SQL_ID_NONE:
				*has_sql_id = false;
				break;
			case KS_SQL_ID_OK:
				*has_sql_id = true;
				*sql_id = query_id;
				break;
			case KS_SQL_ID_INVALID:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid SQL_ID in \"%s\"", text_to_cstring(arg)),
						 errdetail("A SQL_ID is a query ID as v$session shows it, a 64-bit integer."),
						 errhint("Give the statement as 'session_id, serial#, sql_id' or 'session_id, serial#, @node, sql_id'.")));
		}
	}
	switch (ks_parse_session_id(VARDATA_ANY(arg), len, &ref))
	{
		case KS_SESSION_OK:
			break;
		case KS_SESSION_INVALID:
			ks_report_invalid();
		case KS_SESSION_NODE_MISMATCH:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("session ID " INT64_FORMAT " is not on node %d",
							ref.id, ref.node),
					 errdetail("The ID carries its node, %d.", ks_id_node(ref.id)),
					 errhint("Give '" INT64_FORMAT ", serial#' or '%u, serial#, @%d'.",
							 ref.id, ks_id_local(ref.id), ks_id_node(ref.id))));
	}
	return ks_ref_id(&ref);
}

/*
 * The session argument at argno of an action's SQL function: 'sid',
 * 'sid, serial#' or 'sid, serial#, @N'; NULL and anything else is ORA-00026.
 * The serial# is accepted and ignored.  what is the action, as
 * ks_check_privilege() takes it.  With has_sql_id, the string may end in
 * a SQL_ID, as Oracle's CANCEL SQL does: *has_sql_id says whether it did,
 * *sql_id is that query ID, and a malformed one is 22023.
 *
 * For a session of this server, sets *sid to its local ID and returns
 * false.  For one of another node, checks the caller's privilege here,
 * runs this very call there (where the node checks its own) and returns
 * true with its result in *result.
 */
bool
ks_session_arg(FunctionCallInfo fcinfo, int argno, const char *what,
			   KsHistAction action, const char *reason,
			   uint32 *sid, bool *has_sql_id, int64 *sql_id, Datum *result)
{
	int64		id = ks_session_id_arg(fcinfo, argno, has_sql_id, sql_id);
	char	   *session;

	if (ks_id_home(id) != 0)
	{
		/* The privilege is checked here too, as for a session of this node. */
		ks_check_privilege(what);
		/* There, the ID carries its node; a SQL_ID goes with it. */
		if (has_sql_id != NULL && *has_sql_id)
			session = psprintf(INT64_FORMAT ", 0, " INT64_FORMAT, id, *sql_id);
		else
			session = psprintf(INT64_FORMAT, id);
		*result = ks_forward_recorded(fcinfo, argno, id, session, what,
									  action == KS_H_CANCEL && has_sql_id != NULL &&
									  *has_sql_id ? KS_H_CANCEL_SQL_ID : action,
									  reason);
		return true;
	}
	*sid = ks_id_local(id);
	return false;
}

/*
 * Check that the caller may act on sessions at all; what is "kill
 * session", "disconnect session" or "cancel SQL of session" (an "s" makes
 * it plural in the DETAIL).
 */
void
ks_check_privilege(const char *what)
{
	if (!ks_may_kill(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", what),
				 errdetail("Only superusers and roles with the ALTER SYSTEM privilege on parameter \"%s\" may %ss.",
						   KS_PRIVILEGE_PARAMETER, what)));
}

/*
 * Find the session sid for an action on it: a copy of its entry, and who
 * the caller is.  PostgreSQL's own rule stays: only superusers may signal a
 * superuser's backend, and one not yet advertising a role counts as one.
 * missing_ok: return false for a session that is not there.
 */
bool
ks_aim(uint32 sid, const char *what, bool missing_ok, const char *reason,
	   KsSession *target, KsKiller *me)
{
	if (!ks_registry_lookup(sid, target))
	{
		if (missing_ok)
			return false;
		ks_report_missing(sid);
	}
	if ((!OidIsValid(target->roleid) || superuser_arg(target->roleid)) &&
		!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", what),
				 errdetail("Only superusers can %ss of superusers.", what)));

	ks_actor(reason, me);
	return true;
}

/* Who the caller is, on whose behalf it says it acts, and its reason. */
void
ks_actor(const char *reason, KsKiller *me)
{
	memset(me, 0, sizeof(KsKiller));
	me->sid = ks_my_session_id();
	me->pid = MyProcPid;
	namestrcpy(&me->role, GetUserNameFromId(GetUserId(), false));
	if (reason != NULL)
		strlcpy(me->reason, reason, KS_REASON_LEN);
	if (!ks_parse_origin(ks_origin, me))
		me->origin_pid = 0;		/* cannot happen: the setting was checked */
	me->origin_vouched = ks_origin_vouched(me);
}

/*
 * This node's foreign server in the directory, if the directory also names
 * node other; else NULL.
 */
static char *
ks_directory_servers(int other)
{
	char	   *server = ks_node_server(InvalidOid, ks_node_id());

	return server != NULL && ks_node_server(InvalidOid, other) != NULL ?
		server : NULL;
}

/*
 * Whether the origin's vouching is known, for this connection's life: its
 * origin cannot change (PGC_BACKEND), and a change of a user mapping, a
 * foreign server or a role makes it read again.  A node that joins or
 * leaves the directory is seen by connections that start after.
 */
static bool ks_origin_checked = false;
static bool ks_origin_callbacks = false;

static void
ks_origin_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	ks_origin_checked = false;
}

/*
 * Whether this session's origin reads as the report of its node: the
 * session logged in as the user that the claimed role's user mapping for
 * this node's foreign server names, the user a call forwarded by that role
 * connects as, and the claimed node is another node of the directory.  The
 * nodes of a cluster share their catalogs through replication, so this
 * node reads the directory and mappings that the calling node uses.  The
 * origin itself was given at connection start, the only time it can be
 * (PGC_BACKEND).  That is all a node can know: whoever holds that user's
 * password could claim the same, so the LOG line and the DETAIL still name
 * the session that acted here first.  Anything else is printed as a claim.
 * Read once per connection (ks_origin_checked).
 */
static bool
ks_origin_vouched(const KsKiller *k)
{
	static bool vouched = false;
	Oid			roleid;
	char	   *server_name;
	ForeignServer *server;
	UserMapping *mapping;
	const char *login;
	ListCell   *cell;

	if (k->origin_pid == 0 || ks_node_id() == 0 ||
		k->origin_node == 0 || k->origin_node == ks_node_id())
		return false;
	if (ks_origin_checked)
		return vouched;
	if (!ks_origin_callbacks)
	{
		CacheRegisterSyscacheCallback(USERMAPPINGOID, ks_origin_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, ks_origin_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, ks_origin_invalidate, (Datum) 0);
		ks_origin_callbacks = true;
	}
	ks_origin_checked = true;
	vouched = false;

	server_name = ks_directory_servers(k->origin_node);
	if (server_name == NULL)
		return false;
	server = GetForeignServerByName(server_name, true);
	roleid = get_role_oid(NameStr(k->origin_role), true);
	if (server == NULL || !OidIsValid(roleid))
		return false;

	/*
	 * The role's own mapping only: a PUBLIC mapping's user and password are
	 * shared by every role that may use the server, any of which could log in
	 * as that user and claim any other role.
	 */
	if (!SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(roleid),
							   ObjectIdGetDatum(server->serverid)))
		return false;
	mapping = GetUserMapping(roleid, server->serverid);
	login = GetUserNameFromId(GetSessionUserId(), false);
	foreach(cell, mapping->options)
	{
		DefElem    *def = lfirst(cell);

		/* Without a user, libpq's default on the calling node is unknown. */
		if (strcmp(def->defname, "user") == 0)
			vouched = strcmp(defGetString(def), login) == 0;
	}
	return vouched;
}

/* Mark and signal; a session gone meanwhile is 42704. */
void
ks_mark(uint32 sid, const KsSession *target, KsAction action,
		const KsKiller *me, int signo, int *pidfd, KsProcState *before)
{
	switch (ks_registry_mark_and_signal(sid, target->pid, action, me, signo,
										pidfd, before))
	{
		case KS_MARK_DONE:
			break;
		case KS_MARK_GONE:
			ks_report_missing(sid);
		case KS_MARK_SIGNAL_FAILED:
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not send signal to process %d: %m",
							(int) target->pid)));
	}
}

/*
 * " on behalf of role "r" (session N, pid P) of node M, as node M
 * reported" where the origin is vouched for (ks_origin_vouched), "..., as
 * the calling session claimed" where not; or nothing.  Always after the
 * session that acted here.
 */
static char *
ks_describe_origin(const KsKiller *by)
{
	if (by->origin_pid == 0)
		return "";
	if (by->origin_vouched)
		return psprintf(" on behalf of role %s (session " INT64_FORMAT ", pid %d) of node %d, as node %d reported",
						ks_quote_name(NameStr(by->origin_role)), by->origin_sid,
						by->origin_pid, by->origin_node, by->origin_node);
	return psprintf(" on behalf of role %s (session " INT64_FORMAT ", pid %d) of node %d, as the calling session claimed",
					ks_quote_name(NameStr(by->origin_role)), by->origin_sid,
					by->origin_pid, by->origin_node);
}

/* ", for the reason "..."", or nothing: the reason is never a format. */
static char *
ks_describe_reason(const KsKiller *by)
{
	if (by->reason[0] == '\0')
		return "";
	return psprintf(", for the reason %s",
					ks_quote_name(ks_valid_text(by->reason)));
}

/*
 * Log an action on a session: who did what to whom.  done is "killed",
 * "marked to disconnect after its transaction", "disconnected" or "had its
 * statement cancelled".
 */
void
ks_log_action(uint32 sid, const KsSession *target, const char *done,
			  const KsKiller *me)
{
	char	   *target_name = OidIsValid(target->roleid) ?
		GetUserNameFromId(target->roleid, true) : NULL;
	char	   *killer;

	if (target_name == NULL)
		target_name = pstrdup(NameStr(target->user_name));
	if (me->sid != 0)
		killer = psprintf("session " INT64_FORMAT " (pid %d, role %s)",
						  ks_global_id(me->sid), me->pid,
						  ks_quote_name(NameStr(me->role)));
	else
		killer = psprintf("process %d (role %s)", me->pid,
						  ks_quote_name(NameStr(me->role)));
	ereport(LOG,
			(errmsg("session " INT64_FORMAT " (pid %d, role %s, database %s) %s by %s%s%s",
					ks_global_id(sid), (int) target->pid,
					ks_quote_name(target_name),
					ks_quote_name(NameStr(target->db_name)), done, killer,
					ks_describe_origin(me), ks_describe_reason(me))));
}

/* "role "x" (session N)" or "role "x" (process P)", its origin and reason */
char *
ks_describe_marker(const KsKiller *by)
{
	if (by->sid != 0)
		return psprintf("role %s (session " INT64_FORMAT ")%s%s",
						ks_quote_name(NameStr(by->role)), ks_global_id(by->sid),
						ks_describe_origin(by), ks_describe_reason(by));
	return psprintf("role %s (process %d)%s%s", ks_quote_name(NameStr(by->role)),
					by->pid, ks_describe_origin(by), ks_describe_reason(by));
}

/* The DETAIL of session sid's statement, cancelled by by. */
char *
ks_cancel_detail(uint32 sid, const KsKiller *by)
{
	return psprintf("The statement of session " INT64_FORMAT " was cancelled by %s.",
					ks_global_id(sid), ks_describe_marker(by));
}

/*
 * Add to this backend's FATAL 57P01 who ended it, if a kill or a
 * disconnect did (a session marked to disconnect but ended another way
 * keeps PostgreSQL's message); to its ERROR 57014 who cancelled its
 * statement, if cancel_sql() did.  A cancel by SQL_ID names its asker
 * first (cancel.c's ks_add_cancel_detail(), which the entry file asks
 * before this).  Runs inside emit_log_hook, in ErrorContext.
 */
void
ks_add_end_detail(ErrorData *edata)
{
	uint32		my_sid;
	KsKiller	by;

	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
	{
		if (ks_my_mark(KS_CANCEL, &my_sid, &by))
			edata->detail = ks_cancel_detail(my_sid, &by);
	}
	else if (ks_my_mark(KS_KILL, &my_sid, &by))
	{
		if (by.drain)
			edata->detail = psprintf("Session " INT64_FORMAT " was disconnected by %s: its transaction had not ended by the drain deadline, %s, and was rolled back.",
									 ks_global_id(my_sid), ks_describe_marker(&by),
									 timestamptz_to_str(by.deadline));
		else if (by.sid == my_sid)
			edata->detail = psprintf("Session " INT64_FORMAT " was killed by itself%s.",
									 ks_global_id(my_sid), ks_describe_reason(&by));
		else
			edata->detail = psprintf("Session " INT64_FORMAT " was killed by %s.",
									 ks_global_id(my_sid), ks_describe_marker(&by));
	}
	else if (ks_end_reason() == KS_ENDED_AFTER_XACT &&
			 ks_my_mark(KS_DISCONNECT, &my_sid, &by))
		edata->detail = psprintf("Session " INT64_FORMAT " was disconnected by %s after its transaction.",
								 ks_global_id(my_sid), ks_describe_marker(&by));
	else if (ks_end_reason() == KS_ENDED_IDLE &&
			 ks_my_mark(KS_DISCONNECT, &my_sid, &by))
		edata->detail = psprintf("Session " INT64_FORMAT " was disconnected by %s.",
								 ks_global_id(my_sid), ks_describe_marker(&by));
}
