/*-------------------------------------------------------------------------
 *
 * disconnect.c
 *		disconnect_session(): Oracle's ALTER SYSTEM DISCONNECT SESSION
 *		'sid, serial#' POST_TRANSACTION | IMMEDIATE.
 *
 * POST_TRANSACTION lets the session finish its current transaction, then
 * ends it -- PostgreSQL has nothing like it: pg_terminate_backend() always
 * rolls the work back.  The session is marked in the registry.  One that
 * is not in a transaction is ended at once (SIGTERM, as a kill).  One that
 * is keeps going; as its transaction ends, committed or rolled back as its
 * client decides, its transaction callback sees the mark and the session
 * ends right after the statement that ended the transaction has sent its
 * result (selfkill.c), before it could start anything else.  IMMEDIATE,
 * or neither, is exactly kill_session().
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  disconnect.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"

#include "kill_session.h"

PG_FUNCTION_INFO_V1(disconnect_session);

#define KS_DISCONNECT_WHAT	"disconnect session"

/*
 * Registered in every client backend: a session marked to disconnect ends
 * once its transaction has ended.
 */
void
ks_disconnect_xact_callback(XactEvent event, void *arg)
{
	if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PREPARE) &&
		ks_my_mark(KS_DISCONNECT, NULL, NULL))
		ks_end_after_statement();
}

/*
 * disconnect_session(session text, post_transaction boolean DEFAULT false,
 *					  immediate boolean DEFAULT false) returns boolean
 *
 * With post_transaction, true once the session is marked (or, if it was
 * not in a transaction, ended as a kill ends it), without waiting for its
 * transaction.  Otherwise kill_session().
 */
Datum
disconnect_session(PG_FUNCTION_ARGS)
{
	uint32		sid;
	bool		post_transaction = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	bool		immediate = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	KsSession	target;
	KsKiller	me;
	KsActivity	activity;
	bool		in_transaction;

	ks_check_loaded();
	sid = ks_session_arg(fcinfo, 0);
	if (post_transaction && immediate)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("POST_TRANSACTION and IMMEDIATE cannot be used together"),
				 errhint("POST_TRANSACTION waits for the session's transaction; IMMEDIATE rolls it back now.")));
	if (!post_transaction)
		PG_RETURN_BOOL(ks_kill_session(sid));

	ks_check_privilege(KS_DISCONNECT_WHAT);
	ks_aim(sid, KS_DISCONNECT_WHAT, false, &target, &me);

	/*
	 * The caller's own session is in this statement's transaction; another
	 * one is in a transaction if it has one started.
	 */
	in_transaction = target.pid == MyProcPid ||
		(ks_backend_activity(target.pid, &activity) &&
		 activity.xact_start != 0);

	ks_mark(sid, &target, KS_DISCONNECT, &me, in_transaction ? 0 : SIGTERM,
			NULL);
	ks_log_action(sid, &target,
				  in_transaction ? "marked to disconnect after its transaction" :
				  "disconnected", &me);
	PG_RETURN_BOOL(true);
}
