/*-------------------------------------------------------------------------
 *
 * cancel.c
 *		cancel_sql(): cancel the statement a session is running and keep
 *		the session -- Oracle's ALTER SYSTEM CANCEL SQL 'sid, serial#',
 *		OceanBase's and MySQL's KILL QUERY id.
 *
 * The cancel is SIGINT, as pg_cancel_backend() sends it, aimed through the
 * registry like a kill, so it can reach no other process.  The call
 * returns once the target has stopped the statement: it no longer runs a
 * statement, runs another one, or is gone.  With track_activities off for
 * the target, its PGPROC tells instead of its status entry: it runs a
 * statement if it is in a transaction and does not wait for its client,
 * and a statement of another transaction is another one.  The target's ERROR 57014 gets
 * a DETAIL naming who cancelled it (kill.c).
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  cancel.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"

#include "kill_session.h"

PG_FUNCTION_INFO_V1(cancel_sql);

#define KS_CANCEL_WHAT	"cancel SQL of session"

/*
 * What is known of the statement a session runs.  With track_activities
 * on, its status entry says whether it runs one and since when; with it
 * off (STATE_DISABLED), its PGPROC still says whether it waits for its
 * client, and in which transaction it is.
 */
typedef struct KsStatement
{
	bool		tracked;		/* from the status entry */
	TimestampTz stmt_start;		/* tracked: when the statement started */
	uint32		lxid;			/* untracked: its transaction */
} KsStatement;

/* Whether the session runs a statement now; if so, which, in *stmt. */
static bool
ks_running(uint32 sid, pid_t pid, KsStatement *stmt)
{
	KsActivity	activity;
	KsProcState proc;

	if (ks_backend_activity(pid, &activity) && activity.state != STATE_DISABLED)
	{
		stmt->tracked = true;
		stmt->stmt_start = activity.stmt_start;
		return activity.state == STATE_RUNNING ||
			activity.state == STATE_FASTPATH;
	}
	stmt->tracked = false;
	if (!ks_registry_proc_state(sid, pid, &proc))
		return false;
	stmt->lxid = proc.lxid;
	/* A statement runs in a transaction, and does not wait for the client. */
	return proc.in_transaction && !proc.reading_client;
}

/* Whether the statement stmt still runs in the session. */
static bool
ks_still_running(uint32 sid, pid_t pid, const KsStatement *stmt)
{
	KsStatement now;

	if (!ks_running(sid, pid, &now))
		return false;
	if (stmt->tracked && now.tracked)
		return now.stmt_start == stmt->stmt_start;
	return now.lxid == stmt->lxid;
}

/*
 * cancel_sql(session text) returns boolean
 *
 * true once the statement the session was running has stopped; false with
 * a NOTICE when it was not running one, or with a WARNING when it did not
 * stop within kill_session.wait_timeout.
 */
Datum
cancel_sql(PG_FUNCTION_ARGS)
{
	uint32		sid;
	KsSession	target;
	KsKiller	me;
	KsStatement stmt;
	int			timeout_ms = ks_kill_wait_timeout();
	TimestampTz deadline;
	volatile bool stopped = false;
	Datum		result;

	ks_check_loaded();
	if (ks_session_arg(fcinfo, 0, KS_CANCEL_WHAT, &sid, &result))
		return result;
	ks_check_privilege(KS_CANCEL_WHAT);
	ks_aim(sid, KS_CANCEL_WHAT, false, &target, &me);

	if (!ks_running(sid, target.pid, &stmt))
	{
		ereport(NOTICE,
				(errmsg("session " INT64_FORMAT " is not running a statement",
						ks_global_id(sid))));
		PG_RETURN_BOOL(false);
	}

	ks_mark(sid, &target, KS_CANCEL, &me, SIGINT, NULL, NULL);
	PG_TRY();
	{
		ks_log_action(sid, &target, "had its statement cancelled", &me);
		/* The caller's own statement is this one: it ends here. */
		CHECK_FOR_INTERRUPTS();

		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   timeout_ms);
		for (;;)
		{
			if (!ks_still_running(sid, target.pid, &stmt))
			{
				stopped = true;
				break;
			}
			if (timeout_ms == 0 || GetCurrentTimestamp() >= deadline)
				break;
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1, WAIT_EVENT_PG_SLEEP);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_FINALLY();
	{
		/* The mark is for this statement only. */
		ks_registry_unmark(sid, target.pid, KS_CANCEL);
	}
	PG_END_TRY();

	if (stopped || timeout_ms == 0)
		PG_RETURN_BOOL(true);
	ereport(WARNING,
			(errmsg("statement of session " INT64_FORMAT " not cancelled yet",
					ks_global_id(sid)),
			 errdetail("It did not stop within %d ms.", timeout_ms)));
	PG_RETURN_BOOL(false);
}
