/*-------------------------------------------------------------------------
 *
 * oracle.c
 *		The Oracle-facing touches: SHOW PROCESSLIST, and the HINT that
 *		turns ALTER SYSTEM KILL SESSION into its PostgreSQL equivalent.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  oracle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/prepare.h"
#include "mb/pg_wchar.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"

#include "kill_session.h"
#include "sql_scan.h"

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

	if (queryString == NULL)
		return false;
	if (location > 0)
		queryString += location;
	ks_scan_init(&scanner, queryString,
				 len > 0 ? (size_t) len : strlen(queryString),
				 standard_conforming_strings);
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

/*---- The HINT for ALTER SYSTEM KILL SESSION ----*/

/*
 * Add to a syntax error in ALTER SYSTEM KILL SESSION the call that does the
 * same here, or what is wrong with its session string.  Runs inside
 * emit_log_hook (see kill_session.c): the scanner raises no error and
 * allocates nothing.
 */
void
ks_add_oracle_hint(ErrorData *edata)
{
	const char *query;
	const char *p;
	int			pos;
	int			i;
	size_t		len;
	char		call[128];

	if (edata->internalquery != NULL)
	{
		query = edata->internalquery;
		pos = edata->internalpos;
	}
	else
	{
		query = debug_query_string;
		pos = edata->cursorpos;
	}
	if (query == NULL || pos <= 0)
		return;

	/* The error's character position to a byte offset. */
	len = strlen(query);
	p = query;
	for (i = 1; i < pos && *p; i++)
		p += pg_mblen(p);

	switch (ks_find_kill_statement(query, len, p - query,
								   standard_conforming_strings,
								   call, sizeof(call)))
	{
		case KS_KILL_VALID:
			edata->hint = psprintf("On PostgreSQL run: %s", call);
			break;
		case KS_KILL_INVALID:
			edata->hint = pstrdup("On PostgreSQL run: SELECT kill_session('session_id'); "
								  "the session string given is not valid: it must be "
								  "'session_id' or 'session_id, serial#', with numbers "
								  "from SHOW PROCESSLIST.");
			break;
		case KS_KILL_NONE:
			break;
	}
}
