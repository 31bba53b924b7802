/*-------------------------------------------------------------------------
 *
 * kill_session.c
 *		Oracle-mode ALTER SYSTEM KILL SESSION for PostgreSQL: module
 *		initialisation, settings and hook wiring.
 *
 * The library must be loaded through shared_preload_libraries: it keeps the
 * registry of client session IDs in shared memory, and every client backend
 * takes its ID as it authenticates.  Loaded any other way, every SQL entry
 * point raises an error that names the setting.
 *
 * This file is the front door: it may call every file, and no file calls
 * it.  A setting that several files read is defined by the file below them
 * that owns it, or travels in the call.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  kill_session.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "libpq/auth.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "kill_session.h"
#include "node_call.h"
#include "oracle_hint.h"
#include "privilege.h"
#include "registry.h"

PG_MODULE_MAGIC;

/*---- Saved hook values ----*/

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ClientAuthentication_hook_type prev_ClientAuthentication = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

void		_PG_init(void);

static void ks_shmem_request(void);
static void ks_shmem_startup(void);
static void ks_ClientAuthentication(Port *port, int status);
static void ks_post_parse_analyze(ParseState *pstate, Query *query,
								  JumbleState *jstate);
static void ks_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
							  bool readOnlyTree,
							  ProcessUtilityContext context,
							  ParamListInfo params,
							  QueryEnvironment *queryEnv,
							  DestReceiver *dest, QueryCompletion *qc);
static void ks_emit_log(ErrorData *edata);

void
_PG_init(void)
{
	/*
	 * Without preloading there is no registry.  The SQL functions still exist
	 * (CREATE EXTENSION works) and each reports the missing setting.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	ks_define_node_setting();
	ks_define_action_settings();
	ks_define_history_settings();
	ks_define_policy_settings();
	ks_define_checker_settings();
	ks_define_call_settings();
	ks_define_connection_settings();
	ks_define_privilege_parameter();

	MarkGUCPrefixReserved("kill_session");
	ks_register_checker();

	/*
	 * v$session's SQL_ID is the query ID that pg_stat_statements shows:
	 * computed under compute_query_id = auto, as that module asks.
	 */
	EnableQueryId();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ks_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ks_shmem_startup;
	prev_ClientAuthentication = ClientAuthentication_hook;
	ClientAuthentication_hook = ks_ClientAuthentication;
	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = ks_post_parse_analyze;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = ks_ProcessUtility;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = ks_emit_log;
}

static void
ks_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	ks_registry_shmem_request();
	ks_history_shmem_request();
}

static void
ks_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	ks_registry_shmem_startup();
	ks_history_shmem_startup();
}

/*
 * Every client backend passes here once authenticated.  Walsenders do too,
 * but they are not client sessions and get no ID.
 */
static void
ks_ClientAuthentication(Port *port, int status)
{
	if (prev_ClientAuthentication)
		prev_ClientAuthentication(port, status);

	if (status == STATUS_OK && !am_walsender)
	{
		ks_register_session(port);
		ks_policy_publish();
		RegisterXactCallback(ks_disconnect_xact_callback, NULL);
		ks_install_cancel_handler();
	}
}

static void
ks_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	ks_rewrite_show(query);
	ks_analyze_show_text(pstate, query);
	ks_check_cancel_handler();

	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query, jstate);
}

static void
ks_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	PlannedStmt *translated;
	bool		is_translated;
	bool		show_discarded;

	if (IsA(stmt, AlterSystemStmt))
		ks_check_alter_system((AlterSystemStmt *) stmt);
	else if (IsA(stmt, TransactionStmt) && IsAbortedTransactionBlockState())
		ks_disconnect_leaving_block();
	else if (IsA(stmt, ExecuteStmt))
		ks_show_before_execute(pstmt, queryString);
	show_discarded = ks_show_may_discard(stmt);

	/* GRANT / REVOKE ALTER SYSTEM [TO | FROM] role, Oracle's form */
	is_translated = ks_translate_grant(pstmt, queryString, &translated);
	if (is_translated)
	{
		pstmt = translated;
		readOnlyTree = true;
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	/* A LOAD may have brought a library that replaced the SIGINT handler. */
	ks_check_cancel_handler();

	/* SHOW PROCESSLIST's statement outlives DEALLOCATE and DISCARD ALL. */
	if (show_discarded)
		ks_show_after_discard();

	/* Report what was done: a GRANT or REVOKE, not GRANT ROLE. */
	if (is_translated && qc != NULL)
		SetQueryCompletion(qc,
						   ((GrantStmt *) pstmt->utilityStmt)->is_grant ?
						   CMDTAG_GRANT : CMDTAG_REVOKE, 0);
}

/*
 * Add the DETAIL of a killed or disconnected session's FATAL, the DETAIL
 * of a statement's cancel by cancel_sql(), and the HINT of an Oracle
 * statement's syntax error; and make the FATAL of a session ended as an
 * idle blocker say so.
 *
 * The hook's documented contract allows it only to suppress server output;
 * editing the report is outside it.  What makes these edits safe: they only
 * fill a field that is still empty, so nothing the server set is replaced
 * (but for the FATAL of an idle blocker's end, which this library's own
 * signal handler caused, and whose message and code it replaces),
 * and the text is allocated in ErrorContext, which is where the report's own
 * fields live and which is reset once the report is done.  The hook runs
 * only when the report is going to the server log: if log_min_messages
 * suppresses the message, the DETAIL or HINT is simply missing.
 */
static void
ks_emit_log(ErrorData *edata)
{
	if (ks_registry_loaded())
	{
		MemoryContext oldcontext = MemoryContextSwitchTo(ErrorContext);

		if (ks_add_idle_end_report(edata))
			;
		else if (((edata->elevel == FATAL &&
				   edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN) ||
				  (edata->elevel == ERROR &&
				   edata->sqlerrcode == ERRCODE_QUERY_CANCELED)) &&
				 edata->detail == NULL)
		{
			if (!ks_add_cancel_detail(edata))
				ks_add_end_detail(edata);
		}
		else if (edata->elevel == ERROR &&
				 edata->sqlerrcode == ERRCODE_SYNTAX_ERROR &&
				 edata->hint == NULL)
			ks_add_oracle_hint(edata, ks_node_id());

		MemoryContextSwitchTo(oldcontext);
	}

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}
