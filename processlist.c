/*-------------------------------------------------------------------------
 *
 * processlist.c
 *		The process list: client sessions by their session IDs.
 *
 * One pass over the registry and one over PostgreSQL's backend status
 * array (what pg_stat_activity reads), joined on the PID, both read at
 * the call, inside a transaction too.  What a
 * caller may see follows pg_stat_activity: user and database of every
 * session; host, command, time, state and statement of a session only to
 * roles that may see its details (its own role, members of it, and
 * pg_read_all_stats).
 *
 * This file owns the process list.  It must not be called by action.c, the
 * forwarding files or the leaves; it reads other nodes only through
 * forward.c's ks_cluster_list().
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  processlist.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/prepare.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "kill_session.h"
#include "registry.h"
#include "sql_scan.h"

PG_FUNCTION_INFO_V1(kill_session_processlist);
PG_FUNCTION_INFO_V1(kill_session_cluster_processlist);

#define KS_PROCESSLIST_COLS	9

static Datum
ks_seconds_since(TimestampTz start, TimestampTz now, bool *isnull)
{
	long		secs;
	int			usecs;

	if (start == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	TimestampDifference(start, now, &secs, &usecs);
	return Int32GetDatum((int32) Min(secs, PG_INT32_MAX));
}

/*
 * COMMAND and STATE for a backend state, as MySQL and OceanBase users know
 * them.  doc/reference.md lists every value.
 */
static void
ks_describe_state(BackendState state, bool killed, bool disconnect_pending,
				  const char **command, const char **stname)
{
	switch (state)
	{
		case STATE_RUNNING:
		case STATE_FASTPATH:
			*command = "Query";
			*stname = "ACTIVE";
			break;
		case STATE_IDLE:
			*command = "Sleep";
			*stname = "SLEEP";
			break;
		case STATE_IDLEINTRANSACTION:
			*command = "Sleep";
			*stname = "SLEEP IN TRANSACTION";
			break;
		case STATE_IDLEINTRANSACTION_ABORTED:
			*command = "Sleep";
			*stname = "SLEEP IN FAILED TRANSACTION";
			break;
		case STATE_DISABLED:
			*command = "Unknown";
			*stname = "DISABLED";
			break;
		default:
			*command = "Connect";
			*stname = "CONNECTING";
			break;
	}
	if (killed)
	{
		*command = "Killed";
		*stname = "KILLED";
	}
	else if (disconnect_pending)
		*stname = "DISCONNECT PENDING";
}

static Datum
ks_text_or_null(const char *str, bool *isnull)
{
	if (str == NULL)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return CStringGetTextDatum(str);
}

/*
 * Put one session's row: from its registry entry, and from what its status
 * entry says, be, or NULL while it has authenticated but is not in the
 * backend status array yet.  Who may see what follows pg_stat_activity.
 */
static void
ks_put_row(ReturnSetInfo *rsinfo, bool with_node, const KsSession *session,
		   const KsActivity *be, bool read_all_stats, TimestampTz now)
{
	Datum		values[KS_PROCESSLIST_COLS + 1] = {0};
	bool		nulls[KS_PROCESSLIST_COLS + 1] = {0};
	BackendState state = be ? be->state : STATE_UNDEFINED;
	Oid			role;
	const char *user;
	const char *db;
	bool		visible;
	int			i = 0;

	if (be != NULL)
	{
		role = be->userid;
		user = GetUserNameFromId(role, true);
		db = OidIsValid(be->databaseid) ?
			get_database_name(be->databaseid) : NULL;
	}
	else
	{
		role = get_role_oid(NameStr(session->user_name), true);
		user = NameStr(session->user_name);
		db = NameStr(session->db_name);
	}
	visible = read_all_stats ||
		(OidIsValid(role) && has_privs_of_role(GetUserId(), role));

	if (with_node)
		values[i++] = Int32GetDatum(ks_node_id());	/* node */
	values[i++] = Int64GetDatum(ks_global_id(session->sid));	/* id */
	values[i] = ks_text_or_null(user, &nulls[i]);	/* user */
	i++;
	values[i] = ks_text_or_null(visible && session->host[0] != '\0' ?
								session->host : NULL, &nulls[i]);	/* host */
	i++;
	values[i] = ks_text_or_null(db, &nulls[i]); /* db */
	i++;
	if (visible)
	{
		const char *command;
		const char *stname;

		ks_describe_state(state, session->killed, session->disconnect_pending,
						  &command, &stname);
		values[i++] = CStringGetTextDatum(command); /* command */
		values[i] = ks_seconds_since(state == STATE_UNDEFINED ?
									 session->connect_time :
									 be->state_start,
									 now, &nulls[i]);	/* time */
		i++;
		values[i++] = CStringGetTextDatum(stname);	/* state */
		if (be != NULL && be->statement != NULL)	/* info */
			values[i++] = CStringGetTextDatum(pgstat_clip_activity(be->statement));
		else
			nulls[i++] = true;
	}
	else
	{
		nulls[i++] = true;		/* command */
		nulls[i++] = true;		/* time */
		nulls[i++] = true;		/* state */
		values[i++] = CStringGetTextDatum("<insufficient privilege>");	/* info */
	}
	values[i++] = Int32GetDatum(session->pid);	/* pid */
	Assert(i == KS_PROCESSLIST_COLS + (with_node ? 1 : 0));

	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * Put a row for each session of this server, with this node's number first
 * if with_node: each registry entry, with its status entry read in place.
 */
static void
ks_list_sessions(ReturnSetInfo *rsinfo, bool with_node)
{
	bool		read_all_stats;
	TimestampTz now = GetCurrentTimestamp();
	KsSession  *sessions;
	char	   *statement = palloc(pgstat_track_activity_query_size);
	int			nsessions;
	int			i;

	read_all_stats = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	sessions = ks_registry_snapshot(&nsessions, false);
	for (i = 0; i < nsessions; i++)
	{
		KsActivity	activity;
		bool		known = ks_read_activity(sessions[i].procno, sessions[i].pid,
											 &activity, statement, false);

		ks_put_row(rsinfo, with_node, &sessions[i], known ? &activity : NULL,
				   read_all_stats, now);
	}
}

/*
 * kill_session_processlist() returns setof (id, user, host, db, command,
 * time, state, info, pid); the view processlist and SHOW PROCESSLIST read
 * it.
 */
Datum
kill_session_processlist(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_list_sessions(rsinfo, false);
	return (Datum) 0;
}

/*
 * Whether a row of node's list, its columns as text, may be shown: its ID
 * must carry that node.  What the caller may not see of another role's
 * session is hidden as processlist hides it here, whatever the role that
 * the node showed it to could see.
 */
static bool
ks_node_row_ok(int node, const char **row, bool read_all_stats)
{
	long long	id;
	char	   *end;
	Oid			role;

	if (row[0] == NULL)
		return false;
	errno = 0;
	id = strtoll(row[0], &end, 10);
	if (end == row[0] || *end != '\0' || errno != 0 ||
		!ks_id_valid(id) || ks_id_node(id) != node)
		return false;
	role = row[1] != NULL ? get_role_oid(row[1], true) : InvalidOid;
	if (!read_all_stats &&
		!(OidIsValid(role) && has_privs_of_role(GetUserId(), role)))
	{
		row[2] = NULL;			/* host */
		row[4] = NULL;			/* command */
		row[5] = NULL;			/* time */
		row[6] = NULL;			/* state */
		row[7] = "<insufficient privilege>";	/* info */
	}
	return true;
}

/*
 * kill_session_cluster_processlist() returns setof (node, id, user, host,
 * db, command, time, state, info, pid): this server's sessions and every
 * other node's in kill_session_nodes, each node's as its processlist shows
 * them to the caller's role there (by the caller's user mapping).  The
 * nodes are read at once, while this server's list is taken; a node that
 * cannot be read gives a WARNING, and the list comes without its rows.
 */
Datum
kill_session_cluster_processlist(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_cluster_list(fcinfo, "processlist",
					"id, \"user\", host, db, command, \"time\", state, info, pid",
					KS_PROCESSLIST_COLS, ks_list_sessions, ks_node_row_ok,
					ks_wait_timeout_ms());
	return (Datum) 0;
}


/*---- The SHOW PROCESSLIST front door ----*/

/*
 * The session-level prepared statement that answers SHOW PROCESSLIST.  It
 * is listed in pg_prepared_statements, and kept there: DEALLOCATE and
 * DISCARD ALL remove it, and it is made again at once.
 */
#define KS_SHOW_STATEMENT	"kill_session_show_processlist"

/*
 * Its text: a stand-in with the process list's result shape that names no
 * schema.  Whenever it is analysed -- when the statement is made, and
 * again whenever the plan cache finds it stale, as after ALTER EXTENSION
 * SET SCHEMA in any session -- ks_analyze_show_text() replaces it with
 * KS_SHOW_SELECT over the extension's schema as it is at that moment.
 */
#define KS_SHOW_TEXT \
	"SELECT NULL::bigint AS \"ID\", NULL::text AS \"USER\", NULL::text AS \"HOST\", " \
	"NULL::text AS \"DB\", NULL::text AS \"COMMAND\", NULL::integer AS \"TIME\", " \
	"NULL::text AS \"STATE\", NULL::text AS \"INFO\" WHERE false " \
	"/* kill_session: SHOW PROCESSLIST */"

/* What it stands for; the schema-qualified view and ORDER BY follow. */
#define KS_SHOW_SELECT \
	"SELECT id AS \"ID\", \"user\" AS \"USER\", host AS \"HOST\", " \
	"db AS \"DB\", command AS \"COMMAND\", \"time\" AS \"TIME\", " \
	"state AS \"STATE\", info AS \"INFO\" FROM "

/*
 * Look the kill_session extension up by name, in one scan: its OID and its
 * schema together, or false if it is not installed in this database.
 */
static bool
ks_lookup_extension(Oid *extoid, Oid *schema)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("kill_session"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_extension ext = (Form_pg_extension) GETSTRUCT(tuple);

		*extoid = ext->oid;
		*schema = ext->extnamespace;
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The name of the extension's schema, with the extension locked against
 * DROP EXTENSION (and so DROP SCHEMA ... CASCADE) until the end of the
 * transaction; NULL if it is not installed.  It is looked up again once
 * locked: taking the lock waits for a concurrent drop to commit, and the
 * second look then sees it.
 */
static char *
ks_locked_extension_schema(void)
{
	for (;;)
	{
		Oid			extoid;
		Oid			schema;
		Oid			extoid_locked;
		Oid			schema_locked;
		char	   *name;

		if (!ks_lookup_extension(&extoid, &schema))
			return NULL;
		LockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
		if (ks_lookup_extension(&extoid_locked, &schema_locked) &&
			extoid_locked == extoid && schema_locked == schema)
		{
			name = get_namespace_name(schema);
			if (name != NULL)
				return name;
		}
		UnlockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
	}
}

static char *
ks_show_schema(void)
{
	char	   *schema = ks_locked_extension_schema();

	if (schema == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("SHOW PROCESSLIST needs the kill_session extension in this database"),
				 errhint("Run CREATE EXTENSION kill_session;")));
	return schema;
}

/* Whether the session's statement of our name is the extension's own. */
static bool
ks_is_show_statement(PreparedStatement *stmt)
{
	return !stmt->from_sql &&
		strcmp(stmt->plansource->query_string, KS_SHOW_TEXT) == 0;
}

/*
 * Make sure the prepared statement that SHOW PROCESSLIST executes exists.
 * A user's statement that happens to have the name is never replaced, nor
 * run in its place.
 */
static void
ks_ensure_show_statement(void)
{
	RawStmt    *raw;
	CachedPlanSource *plansource;
	List	   *querytrees;
	PreparedStatement *existing;

	existing = FetchPreparedStatement(KS_SHOW_STATEMENT, false);
	if (existing != NULL)
	{
		if (!ks_is_show_statement(existing))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_PSTATEMENT),
					 errmsg("prepared statement \"%s\" already exists",
							KS_SHOW_STATEMENT),
					 errhint("SHOW PROCESSLIST uses that name; DEALLOCATE the statement to use SHOW PROCESSLIST.")));
		return;
	}

	raw = linitial_node(RawStmt, raw_parser(KS_SHOW_TEXT, RAW_PARSE_DEFAULT));
	plansource = CreateCachedPlan(raw, KS_SHOW_TEXT, CreateCommandTag(raw->stmt));
	querytrees = pg_analyze_and_rewrite_fixedparams(raw, KS_SHOW_TEXT,
													NULL, 0, NULL);
	CompleteCachedPlan(plansource, querytrees, NULL, NULL, 0, NULL, NULL,
					   CURSOR_OPT_PARALLEL_OK, true);
	StorePreparedStatement(KS_SHOW_STATEMENT, plansource, false);
}

/*
 * Called for every analysed statement: if it is KS_SHOW_TEXT, replace it
 * with the process list read from the extension's schema, in ID order.
 */
void
ks_analyze_show_text(ParseState *pstate, Query *query)
{
	char	   *sql;
	RawStmt    *raw;
	Query	   *real;

	if (query->commandType != CMD_SELECT || pstate->p_sourcetext == NULL ||
		strcmp(pstate->p_sourcetext, KS_SHOW_TEXT) != 0)
		return;

	sql = psprintf("%s%s.processlist ORDER BY id", KS_SHOW_SELECT,
				   quote_identifier(ks_show_schema()));
	raw = linitial_node(RawStmt, raw_parser(sql, RAW_PARSE_DEFAULT));
	real = parse_analyze_fixedparams(raw, sql, NULL, 0, NULL);
	real->stmt_location = query->stmt_location;
	real->stmt_len = query->stmt_len;
	memcpy(query, real, sizeof(Query));
}

/*
 * SHOW PROCESSLIST parses in PostgreSQL as SHOW of a setting named
 * processlist, and the portal asks for the setting's one-column result
 * shape before any utility hook could answer it.  So the analysed SHOW is
 * replaced here, after parse analysis, keeping its location in the query
 * string.
 *
 * The replacement is EXECUTE of a prepared SELECT over the process list,
 * not the SELECT itself.  The caller decided from the raw SHOW that no
 * snapshot is needed, and a plain SELECT in its place would reach the
 * planner without one (assert-enabled servers check for it).  A utility
 * statement is not planned there; the prepared statement's plan is built
 * when EXECUTE runs, and plancache.c takes a snapshot for that itself,
 * judging from the SELECT it holds.  Its result shape is the SELECT's, so
 * rows come back over the simple, extended and prepared protocols.
 *
 * A client may prepare SHOW PROCESSLIST itself at the protocol level: its
 * statement then holds this EXECUTE and is never analysed again.  So the
 * prepared SELECT is made again right after a DEALLOCATE or DISCARD ALL
 * removed it (ks_show_after_discard) -- the portal of a client's statement
 * asks for its result shape before EXECUTE runs -- and its existence is
 * checked again each time such an EXECUTE runs (ks_show_before_execute).
 * Where the extension lives is looked up whenever the prepared SELECT is
 * analysed (ks_analyze_show_text).
 */
void
ks_rewrite_show(Query *query)
{
	VariableShowStmt *show;
	ExecuteStmt *exec;

	if (query->commandType != CMD_UTILITY ||
		!IsA(query->utilityStmt, VariableShowStmt))
		return;
	show = (VariableShowStmt *) query->utilityStmt;
	if (pg_strcasecmp(show->name, "processlist") != 0)
		return;

	(void) ks_show_schema();
	ks_ensure_show_statement();

	exec = makeNode(ExecuteStmt);
	exec->name = pstrdup(KS_SHOW_STATEMENT);
	exec->params = NIL;
	query->utilityStmt = (Node *) exec;
}

/*
 * Whether the statement at location (len bytes; 0: to the end) of
 * queryString was written as SHOW: an EXECUTE of our statement that
 * ks_rewrite_show made, not one the user wrote.
 */
static bool
ks_written_as_show(const char *queryString, int location, int len)
{
	KsScanner	scanner;
	KsToken		token;

	if (!ks_scan_init_statement(&scanner, queryString, location, len,
								standard_conforming_strings))
		return false;
	ks_scan_next(&scanner, &token);
	return ks_token_is(&scanner, &token, "show");
}

/*
 * Before a SHOW PROCESSLIST's EXECUTE runs: the prepared SELECT exists and
 * reads from where the extension is now.
 */
void
ks_show_before_execute(PlannedStmt *pstmt, const char *queryString)
{
	ExecuteStmt *exec = (ExecuteStmt *) pstmt->utilityStmt;

	if (strcmp(exec->name, KS_SHOW_STATEMENT) != 0 ||
		!ks_written_as_show(queryString, pstmt->stmt_location,
							pstmt->stmt_len))
		return;
	(void) ks_show_schema();
	ks_ensure_show_statement();
}

/*
 * Whether DEALLOCATE or DISCARD may remove the prepared SELECT: if so,
 * ks_show_after_discard() makes it again.
 */
bool
ks_show_may_discard(Node *stmt)
{
	PreparedStatement *existing;

	if (IsA(stmt, DeallocateStmt))
	{
		const char *name = ((DeallocateStmt *) stmt)->name;

		if (name != NULL && strcmp(name, KS_SHOW_STATEMENT) != 0)
			return false;
	}
	else if (!IsA(stmt, DiscardStmt) ||
			 ((DiscardStmt *) stmt)->target != DISCARD_ALL)
		return false;
	existing = FetchPreparedStatement(KS_SHOW_STATEMENT, false);
	return existing != NULL && ks_is_show_statement(existing);
}

void
ks_show_after_discard(void)
{
	if (FetchPreparedStatement(KS_SHOW_STATEMENT, false) == NULL &&
		ks_locked_extension_schema() != NULL)
		ks_ensure_show_statement();
}
