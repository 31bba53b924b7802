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
 * With a SQL_ID, Oracle's 'sid, serial#[, @N], sql_id', the cancel hits
 * only a statement with that query ID.  The session itself decides, in its
 * SIGINT handler, as the signal arrives: it cancels if it runs such a
 * statement -- its status entry shows that query ID, and a portal runs --
 * and otherwise leaves the signal alone.  Once a statement's portal has
 * ended, nothing of it is left to cancel: a later statement's status is
 * reported before its portal runs, and a cancel still pending when the
 * backend reads its next message is dropped there (PostgresMain).  So the
 * cancel can reach no other statement, however the two race.
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
#include "libpq/pqsignal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
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
 * The SIGINT handler of every client session: PostgreSQL's own, but for a
 * cancel by SQL_ID, which it takes only if it still runs that statement.
 * Signal-safe: it reads its own registry slot and status entry, takes no
 * lock, and calls PostgreSQL's handler.
 */
static void
ks_sigint_handler(SIGNAL_ARGS)
{
	int			save_errno = errno;
	int64		query_id;
	KsSqlCancel ask = ks_my_cancel_ask(&query_id);

	if (ask == KS_SQL_CANCEL_ASKED || ask == KS_SQL_CANCEL_ABANDONED)
	{
		volatile PgBackendStatus *be = MyBEEntry;
		bool		running;

		running = ActivePortal != NULL && be != NULL &&
			(be->st_state == STATE_RUNNING || be->st_state == STATE_FASTPATH) &&
			(int64) be->st_query_id == query_id;
		ks_my_cancel_answer(running ? KS_SQL_CANCEL_TAKEN : KS_SQL_CANCEL_REFUSED,
							running ? be->st_activity_start_timestamp : 0);
		if (!running)
		{
			errno = save_errno;
			return;
		}
	}
	errno = save_errno;
	StatementCancelHandler(postgres_signal_arg);
}

/* Called once the session is registered. */
void
ks_install_cancel_handler(void)
{
	pqsignal(SIGINT, ks_sigint_handler);
}

/*
 * Cancel the statement with query ID sql_id in session sid, if it runs it:
 * true once it has stopped; false with a NOTICE if the session runs
 * another statement or none, or with a WARNING if it did not stop within
 * kill_session.wait_timeout.
 */
static bool
ks_cancel_sql_id(uint32 sid, const KsSession *target, const KsKiller *me,
				 int64 sql_id)
{
	KsActivity	activity;
	KsStatement stmt = {0};
	int			timeout_ms = ks_wait_timeout_ms();
	TimestampTz deadline;
	KsSqlCancel answer = KS_SQL_CANCEL_ASKED;
	volatile bool stopped = false;
	volatile bool asked = false;

	if (!ks_backend_activity(target->pid, &activity) ||
		activity.state == STATE_DISABLED)
	{
		ereport(NOTICE,
				(errmsg("the SQL_ID of session " INT64_FORMAT "'s statement is not known",
						ks_global_id(sid)),
				 errdetail("track_activities is off for it.")));
		return false;
	}
	if (activity.state != STATE_RUNNING && activity.state != STATE_FASTPATH)
	{
		ereport(NOTICE,
				(errmsg("session " INT64_FORMAT " is not running a statement",
						ks_global_id(sid))));
		return false;
	}
	if (activity.query_id != sql_id)
	{
		ereport(NOTICE,
				(errmsg("session " INT64_FORMAT " is running another statement",
						ks_global_id(sid)),
				 errdetail("Its SQL_ID is " INT64_FORMAT ", not " INT64_FORMAT ".",
						   activity.query_id, sql_id)));
		return false;
	}

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   Max(timeout_ms, 1000));
	PG_TRY();
	{
		/* Ask, once no other caller's ask is waiting for its answer. */
		for (;;)
		{
			KsAskResult r = ks_registry_ask_cancel(sid, target->pid, me, sql_id);

			if (r == KS_ASK_SENT)
			{
				asked = true;
				break;
			}
			if (r == KS_ASK_GONE)
				break;
			if (r == KS_ASK_SIGNAL_FAILED)
				ereport(ERROR,
						(errcode(ERRCODE_SYSTEM_ERROR),
						 errmsg("could not send signal to process %d: %m",
								(int) target->pid)));
			if (GetCurrentTimestamp() >= deadline)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1, WAIT_EVENT_PG_SLEEP);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}

		/* The session answers as the signal arrives. */
		while (asked)
		{
			answer = ks_registry_cancel_answer(sid, target->pid,
											   &stmt.stmt_start);
			if (answer != KS_SQL_CANCEL_ASKED || GetCurrentTimestamp() >= deadline)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1, WAIT_EVENT_PG_SLEEP);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}

		if (asked && answer == KS_SQL_CANCEL_TAKEN)
		{
			ks_log_action(sid, target, "had its statement cancelled", me);
			/* The caller's own statement is this one: it ends here. */
			CHECK_FOR_INTERRUPTS();
			/* the statement it took, which started when its answer says */
			stmt.tracked = true;
			deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   timeout_ms);
			for (;;)
			{
				if (!ks_still_running(sid, target->pid, &stmt))
				{
					stopped = true;
					break;
				}
				if (timeout_ms == 0 || GetCurrentTimestamp() >= deadline)
					break;
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 1, WAIT_EVENT_PG_SLEEP);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
		}
	}
	PG_FINALLY();
	{
		if (asked)
			ks_registry_end_cancel(sid, target->pid);
	}
	PG_END_TRY();

	if (!asked || answer == KS_SQL_CANCEL_REFUSED)
	{
		ereport(NOTICE,
				(errmsg("session " INT64_FORMAT " is running another statement, or none",
						ks_global_id(sid)),
				 errdetail("Its statement with SQL_ID " INT64_FORMAT " ended before the cancel reached it.",
						   sql_id)));
		return false;
	}
	if (answer == KS_SQL_CANCEL_TAKEN && (stopped || timeout_ms == 0))
		return true;
	ereport(WARNING,
			(errmsg("statement of session " INT64_FORMAT " not cancelled yet",
					ks_global_id(sid)),
			 errdetail(answer == KS_SQL_CANCEL_TAKEN ?
					   "It did not stop within %d ms." :
					   "The session did not take the cancel within %d ms.",
					   Max(timeout_ms, answer == KS_SQL_CANCEL_TAKEN ? 0 : 1000))));
	return false;
}

/*
 * cancel_sql(session text) returns boolean
 *
 * true once the statement the session was running has stopped; false with
 * a NOTICE when it was not running one, or with a WARNING when it did not
 * stop within kill_session.wait_timeout.  With a SQL_ID in the session
 * string, only that statement (ks_cancel_sql_id()).
 */
Datum
cancel_sql(PG_FUNCTION_ARGS)
{
	uint32		sid;
	KsSession	target;
	KsKiller	me;
	KsStatement stmt;
	int			timeout_ms = ks_wait_timeout_ms();
	TimestampTz deadline;
	volatile bool stopped = false;
	Datum		result;
	bool		has_sql_id;
	int64		sql_id;

	ks_check_loaded();
	if (ks_session_arg(fcinfo, 0, KS_CANCEL_WHAT, &sid, &has_sql_id, &sql_id,
					   &result))
		return result;
	ks_check_privilege(KS_CANCEL_WHAT);
	ks_aim(sid, KS_CANCEL_WHAT, false, &target, &me);
	if (has_sql_id)
		PG_RETURN_BOOL(ks_cancel_sql_id(sid, &target, &me, sql_id));

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
