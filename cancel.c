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
 * The caller logs its ask before it sends it.  The session answers into
 * the caller's own registry slot, so a session that takes the cancel and
 * exits at once (a client that disconnects on an error) is still known to
 * have taken it: true, and a session gone without answering is told apart
 * (a NOTICE that it ended).  A caller that stops waiting leaves its ask,
 * with its name, to the session, which decides when the signal reaches it
 * and names the caller in its DETAIL: the caller's WARNING says that the
 * statement may still be cancelled.  A session whose SIGINT handler
 * another library has replaced since says so in the registry, and a cancel
 * by SQL_ID of it is refused before anything is sent.
 *
 * This file owns the caller's side of a cancel; cancel_handler.c the
 * session's (its SIGINT handler, and the DETAIL of a cancel by SQL_ID it
 * took).  Nothing below it calls it.
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
#include <unistd.h>

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
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
 * This session's own ask while it is the caller's (reserved, sent or
 * waited for), for its exit: a caller ended by a FATAL before its ask was
 * sent would otherwise leave the session reserved, refusing every later
 * cancel by SQL_ID of it as busy until it disconnects.
 */
static KsAsk ks_pending_ask;
static bool ks_ask_pending = false;
static bool ks_ask_exit_registered = false;

static void
ks_cancel_at_exit(int code, Datum arg)
{
	if (ks_ask_pending)
	{
		LWLockReleaseAll();
		ks_registry_end_cancel(&ks_pending_ask);
		ks_ask_pending = false;
	}
}

/* Whether this call's cancel has been sent, for its history row. */
static volatile bool ks_cancel_signalled = false;

/* The 55000 of a cancel by SQL_ID that the session cannot decide. */
pg_noreturn static void
ks_report_handler_replaced(uint32 sid)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot cancel a statement of session " INT64_FORMAT " by its SQL_ID",
					ks_global_id(sid)),
			 errdetail("Another library has replaced kill_session's SIGINT handler in that session, so the session cannot tell which statement a cancel is for."),
			 errhint("Cancel whatever statement it runs with cancel_sql('" INT64_FORMAT "').",
					 ks_global_id(sid))));
}

/*
 * The session ended before its handler took the cancel: its statement ended
 * with it, and nothing was cancelled.
 */
static void
ks_notice_ended(uint32 sid)
{
	ereport(NOTICE,
			(errmsg("session " INT64_FORMAT " ended before it took the cancel",
					ks_global_id(sid))));
}

/*
 * Cancel the statement with query ID sql_id in session sid, if it runs it:
 * true once it has stopped.  false with a NOTICE if the session runs
 * another statement or none, or ended before it took the cancel; false with
 * a WARNING if its statement did not stop within kill_session.wait_timeout,
 * or if the session did not answer the cancel (it still may: "may still be
 * cancelled").  The ask is logged before it is sent, with who asks.
 */
static bool
ks_cancel_sql_id(uint32 sid, const KsSession *target, KsKiller *me,
				 int64 sql_id)
{
	KsActivity	activity;
	KsStatement stmt = {0};
	int			timeout_ms = ks_wait_timeout_ms();
	int			answer_ms = Max(timeout_ms, 1000);
	TimestampTz deadline;
	KsSqlCancel answer = KS_SQL_CANCEL_ASKED;
	KsAskResult r;
	KsAsk		ask;
	KsProcState proc;
	volatile bool stopped = false;

	if (!ks_backend_activity(target->pid, &activity) &&
		!ks_registry_proc_state(sid, target->pid, &proc))
	{
		ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_NOT_RUNNING,
					  "the session had ended");
		ks_notice_ended(sid);
		return false;
	}
	if (!ks_backend_activity(target->pid, &activity) ||
		activity.state == STATE_DISABLED)
	{
		ereport(NOTICE,
				(errmsg("the SQL_ID of session " INT64_FORMAT "'s statement is not known",
						ks_global_id(sid)),
				 errdetail("track_activities is off for it.")));
		ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_REFUSED,
					  "its SQL_ID is not known: track_activities is off for it");
		return false;
	}
	if (activity.state != STATE_RUNNING && activity.state != STATE_FASTPATH)
	{
		ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_NOT_RUNNING,
					  "it was not running a statement");
		ereport(NOTICE,
				(errmsg("session " INT64_FORMAT " is not running a statement",
						ks_global_id(sid))));
		return false;
	}
	if (activity.query_id != sql_id)
	{
		ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_NOT_RUNNING,
					  psprintf("it was running SQL_ID " INT64_FORMAT, activity.query_id));
		ereport(NOTICE,
				(errmsg("session " INT64_FORMAT " is running another statement",
						ks_global_id(sid)),
				 errdetail("Its SQL_ID is " INT64_FORMAT ", not " INT64_FORMAT ".",
						   activity.query_id, sql_id)));
		return false;
	}

	/* Reserve the ask, once no other caller's ask is unanswered. */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), answer_ms);
	for (;;)
	{
		if (!ks_ask_exit_registered)
		{
			before_shmem_exit(ks_cancel_at_exit, (Datum) 0);
			ks_ask_exit_registered = true;
		}
		r = ks_registry_reserve_cancel(sid, target->pid, me, sql_id, &ask);
		if (r == KS_ASK_SENT)
		{
			ks_pending_ask = ask;
			ks_ask_pending = true;
		}
		if (r != KS_ASK_BUSY || GetCurrentTimestamp() >= deadline)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1, WAIT_EVENT_PG_SLEEP);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (r == KS_ASK_NOT_OURS)
		ks_report_handler_replaced(sid);
	if (r == KS_ASK_BUSY)
	{
		ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_REFUSED,
					  "an earlier cancel by SQL_ID was unanswered");
		ereport(WARNING,
				(errmsg("session " INT64_FORMAT " has not answered an earlier cancel by SQL_ID within %d ms",
						ks_global_id(sid), answer_ms),
				 errdetail("This call asked nothing; the earlier cancel may still cancel its statement.")));
		return false;
	}
	if (r == KS_ASK_GONE)
	{
		ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_NOT_RUNNING,
					  "the session had ended");
		ks_notice_ended(sid);
		return false;
	}

	/* Reserved: ask is set, and is left to the session at the end. */
	PG_TRY();
	{
		/* Logged before it is sent: every cancel it leads to has its line. */
		ks_log_action(sid, target,
					  psprintf("was asked to cancel its statement with SQL_ID " INT64_FORMAT,
							   sql_id),
					  me);
		r = ks_registry_send_cancel(&ask);
		if (r == KS_ASK_SENT)
			ks_cancel_signalled = true;
		if (r == KS_ASK_SIGNAL_FAILED)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not send signal to process %d: %m",
							(int) target->pid)));
		if (r == KS_ASK_NOT_OURS)
			ks_report_handler_replaced(sid);
		if (r == KS_ASK_GONE)
			answer = KS_SQL_CANCEL_ENDED;

		/* The session answers as the signal arrives, into this caller's box. */
		while (answer == KS_SQL_CANCEL_ASKED)
		{
			answer = ks_registry_cancel_answer(&ask, &stmt.stmt_start);
			if (answer != KS_SQL_CANCEL_ASKED || GetCurrentTimestamp() >= deadline)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1, WAIT_EVENT_PG_SLEEP);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}

		if (answer == KS_SQL_CANCEL_TAKEN)
		{
			/*
			 * The statement it took, which started when its answer says; the
			 * caller's own statement is this one, and it may end here.
			 */
			CHECK_FOR_INTERRUPTS();
			stmt.tracked = true;
			deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   timeout_ms);
			for (;;)
			{
				KsStatement now;

				/*
				 * With its start unknown (the session took a later ask
				 * since), the statement has stopped only when the session
				 * runs none.
				 */
				if (stmt.stmt_start != 0 ?
					!ks_still_running(sid, target->pid, &stmt) :
					!ks_running(sid, target->pid, &now))
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
		ks_registry_end_cancel(&ask);
		ks_ask_pending = false;
	}
	PG_END_TRY();

	switch (answer)
	{
		case KS_SQL_CANCEL_TAKEN:
			if (stopped || timeout_ms == 0)
			{
				ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_CANCELLED,
							  stopped ? NULL : "no wait: kill_session.wait_timeout is 0");
				return true;
			}
			ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_MARKED,
						  psprintf("it took the cancel, and did not stop within %d ms",
								   timeout_ms));
			ereport(WARNING,
					(errmsg("statement of session " INT64_FORMAT " not cancelled yet",
							ks_global_id(sid)),
					 errdetail("It took the cancel, and did not stop within %d ms.",
							   timeout_ms)));
			return false;
		case KS_SQL_CANCEL_REFUSED:
			ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_NOT_RUNNING,
						  "its statement ended before the cancel reached it");
			ereport(NOTICE,
					(errmsg("session " INT64_FORMAT " is running another statement, or none",
							ks_global_id(sid)),
					 errdetail("Its statement with SQL_ID " INT64_FORMAT " ended before the cancel reached it.",
							   sql_id)));
			return false;
		case KS_SQL_CANCEL_ENDED:
			ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_NOT_RUNNING,
						  "the session ended before it took the cancel");
			ks_notice_ended(sid);
			return false;
		default:
			ks_record_end(me, KS_H_CANCEL_SQL_ID, KS_O_MARKED,
						  psprintf("not answered within %d ms; it may still be cancelled",
								   answer_ms));
			ereport(WARNING,
					(errmsg("session " INT64_FORMAT " did not answer the cancel within %d ms; its statement may still be cancelled",
							ks_global_id(sid), answer_ms),
					 errdetail("The cancel stays asked: as the session next runs, it cancels its statement if that is still the one with SQL_ID " INT64_FORMAT ".",
							   sql_id)));
			return false;
	}
}

/*
 * Cancel whatever statement session sid runs: true once it has stopped;
 * false with a NOTICE when it runs none, or with a WARNING when it did
 * not stop within kill_session.wait_timeout.
 */
static bool
ks_cancel_statement(uint32 sid, const KsSession *target, KsKiller *me)
{
	KsStatement stmt;
	int			timeout_ms = ks_wait_timeout_ms();
	TimestampTz deadline;
	volatile bool stopped = false;

	if (!ks_running(sid, target->pid, &stmt))
	{
		ks_record_end(me, KS_H_CANCEL, KS_O_NOT_RUNNING,
					  "it was not running a statement");
		ereport(NOTICE,
				(errmsg("session " INT64_FORMAT " is not running a statement",
						ks_global_id(sid))));
		return false;
	}

	ks_mark(sid, target, KS_CANCEL, me, SIGINT, NULL, NULL);
	ks_cancel_signalled = true;
	/* The caller's own statement: cancelled at the next interrupt check. */
	if (target->pid == MyProcPid)
		ks_record_end(me, KS_H_CANCEL, KS_O_CANCELLED,
					  "the caller's own statement");
	PG_TRY();
	{
		ks_log_action(sid, target, "had its statement cancelled", me);
		/* The caller's own statement is this one: it ends here. */
		CHECK_FOR_INTERRUPTS();

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
		ks_registry_unmark(sid, target->pid, KS_CANCEL);
	}
	PG_END_TRY();

	if (stopped || timeout_ms == 0)
	{
		ks_record_end(me, KS_H_CANCEL, KS_O_CANCELLED,
					  stopped ? NULL : "no wait: kill_session.wait_timeout is 0");
		return true;
	}
	ks_record_end(me, KS_H_CANCEL, KS_O_MARKED,
				  psprintf("it did not stop within %d ms", timeout_ms));
	ereport(WARNING,
			(errmsg("statement of session " INT64_FORMAT " not cancelled yet",
					ks_global_id(sid)),
			 errdetail("It did not stop within %d ms.", timeout_ms)));
	return false;
}

/*
 * cancel_sql(session text, reason text DEFAULT NULL) returns boolean
 *
 * true once the statement the session was running has stopped; false with
 * a NOTICE when it was not running one, or with a WARNING when it did not
 * stop within kill_session.wait_timeout.  With a SQL_ID in the session
 * string, only that statement (ks_cancel_sql_id()).
 */
/*
 * Cancel the statement of session sid, on record, for another action
 * (kill_blockers()): false if it is not there (*there false) or runs none,
 * or did not stop in time.
 */
bool
ks_cancel_if_there(uint32 sid, const char *reason, bool *there)
{
	MemoryContext context = CurrentMemoryContext;
	KsSession	target;
	KsKiller	me;
	volatile bool answer = false;

	*there = ks_aim(sid, KS_CANCEL_WHAT, true, reason, &target, &me);
	if (!*there)
		return false;
	ks_record_begin(KS_H_CANCEL, sid, &target, &me);
	ks_cancel_signalled = false;
	PG_TRY();
	{
		answer = ks_cancel_statement(sid, &target, &me);
	}
	PG_CATCH();
	{
		ks_record_error(&me, KS_H_CANCEL, ks_cancel_signalled, false, context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return answer;
}

Datum
cancel_sql(PG_FUNCTION_ARGS)
{
	MemoryContext context = CurrentMemoryContext;
	uint32		sid;
	KsSession	target;
	KsKiller	me;
	Datum		result;
	bool		has_sql_id;
	int64		sql_id;
	const char *reason;
	KsHistAction action;
	volatile bool answer = false;

	ks_check_loaded();
	reason = ks_reason_arg(fcinfo, 1);
	if (ks_session_arg(fcinfo, 0, KS_CANCEL_WHAT, KS_H_CANCEL, reason, &sid,
					   &has_sql_id, &sql_id, &result))
		return result;
	ks_check_privilege(KS_CANCEL_WHAT);
	ks_aim(sid, KS_CANCEL_WHAT, false, reason, &target, &me);
	action = has_sql_id ? KS_H_CANCEL_SQL_ID : KS_H_CANCEL;
	ks_record_begin(action, sid, &target, &me);
	ks_cancel_signalled = false;
	PG_TRY();
	{
		if (has_sql_id)
			answer = ks_cancel_sql_id(sid, &target, &me, sql_id);
		else
			answer = ks_cancel_statement(sid, &target, &me);
	}
	PG_CATCH();
	{
		ks_record_error(&me, action, ks_cancel_signalled, false, context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PG_RETURN_BOOL(answer);
}
