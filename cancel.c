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
 * This file owns both sides of a cancel.  Nothing below it calls it: the
 * DETAIL of a cancel by SQL_ID is added here, asked by the entry file
 * before action.c's.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  cancel.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <link.h>
#include <signal.h>
#include <unistd.h>

#include "access/xact.h"
#include "fmgr.h"
#include "libpq/pqsignal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
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
 * The SIGINT handler this library replaced, which its own calls for every
 * SIGINT it does not keep: PostgreSQL's StatementCancelHandler, or the
 * handler of a library that replaced it before.
 */
static struct sigaction ks_prev_sigint;

/* Whether this session's SIGINT handler was this library's when last seen. */
static bool ks_handler_ours = false;

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

/* Set while the previous handler runs: see ks_sigint_action(). */
static volatile sig_atomic_t ks_in_prev_handler = 0;

/*
 * The cancel by SQL_ID this session took, for the DETAIL of its 57014: who
 * asked, and the start of the statement it cancelled.  Written by the
 * handler, which is the session itself, before it sets QueryCancelPending;
 * read as the cancel is reported.
 */
static volatile sig_atomic_t ks_taken = 0;
static KsKiller ks_taken_by;
static TimestampTz ks_taken_stmt_start;

/*
 * The SIGINT handler of every client session: PostgreSQL's own, but for a
 * cancel by SQL_ID, which it takes only if it still runs that statement.
 * Signal-safe: it reads its own registry slot and status entry, writes its
 * answer without a lock, and calls the handler it replaced for the rest.
 */
static void
ks_sigint_action(int signo, siginfo_t *info, void *context)
{
	int			save_errno = errno;
	int64		query_id;
	KsKiller	by;
	KsSqlCancel ask = KS_SQL_CANCEL_NONE;

	/*
	 * A child forked by system() keeps the handler until it execs: there
	 * SIGINT does what it does by default, as PostgreSQL's own handlers do
	 * from 17 on, and no shared memory is touched.
	 */
	if (MyProcPid != (int) getpid())
	{
		signal(SIGINT, SIG_DFL);
		raise(SIGINT);
		return;
	}
	ask = ks_my_cancel_ask(&query_id, &by);
	if (ask == KS_SQL_CANCEL_ASKED || ask == KS_SQL_CANCEL_ABANDONED)
	{
		volatile PgBackendStatus *be = MyBEEntry;
		bool		running;
		TimestampTz start = 0;

		running = ActivePortal != NULL && be != NULL &&
			(be->st_state == STATE_RUNNING || be->st_state == STATE_FASTPATH) &&
			(int64) be->st_query_id == query_id;
		if (running)
		{
			/* Named before the cancel can be reported. */
			start = be->st_activity_start_timestamp;
			ks_taken_by = by;
			ks_taken_stmt_start = start;
			ks_taken = 1;
		}
		ks_my_cancel_answer(ask,
							running ? KS_SQL_CANCEL_TAKEN : KS_SQL_CANCEL_REFUSED,
							start);
		if (!running)
		{
			errno = save_errno;
			return;
		}
	}

	/*
	 * The handler replaced.  A library that replaced this one afterwards and
	 * calls it in turn could lead back here (from PostgreSQL 18 on, the
	 * replaced handler is pqsignal()'s dispatcher, which calls whatever
	 * pqsignal() installed last): once is enough.
	 */
	if (!ks_in_prev_handler)
	{
		ks_in_prev_handler = 1;
		errno = save_errno;
		if (ks_prev_sigint.sa_flags & SA_SIGINFO)
			ks_prev_sigint.sa_sigaction(signo, info, context);
		else
			ks_prev_sigint.sa_handler(signo);
		ks_in_prev_handler = 0;
	}
	errno = save_errno;
}

/* dl_iterate_phdr()'s callback: the count of objects ever loaded, at once. */
static int
ks_loaded_objects(struct dl_phdr_info *info, size_t size, void *data)
{
	if (size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof(info->dlpi_adds))
		*(unsigned long long *) data = info->dlpi_adds;
	else
		*(unsigned long long *) data = ~0ULL;	/* unknown: look every time */
	return 1;
}

/* Whether SIGINT's handler is this library's now. */
static bool
ks_sigint_is_ours(void)
{
	struct sigaction now;

	if (sigaction(SIGINT, NULL, &now) != 0)
		return false;
	return (now.sa_flags & SA_SIGINFO) != 0 &&
		now.sa_sigaction == ks_sigint_action;
}

static void
ks_cancel_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		ks_check_cancel_handler();
}

/*
 * What pqsignal() installs for an instant below, with SIGINT blocked (not
 * SIG_IGN, which would drop a SIGINT pending meanwhile).
 */
#if PG_VERSION_NUM < 180000
static void
ks_sigint_placeholder(SIGNAL_ARGS)
{
}
#endif

/*
 * Called once the session is registered.  The handler is installed with
 * sigaction() itself, so that it can be told apart from any other: on
 * PostgreSQL 17 and later, pqsignal() installs one dispatcher for every
 * handler.  The handler it replaces is kept to be called: up to 17 it is
 * the function pqsignal() returns (behind 17's dispatcher), from 18 on,
 * where pqsignal() returns nothing, the dispatcher itself.  A SIGINT that
 * is ignored or left to the default is left so, and the session takes no
 * cancel by SQL_ID.
 */
void
ks_install_cancel_handler(void)
{
	struct sigaction act;
	sigset_t	sigint,
				old_mask;

	/* A SIGINT that comes meanwhile waits for the new handler. */
	sigemptyset(&sigint);
	sigaddset(&sigint, SIGINT);
	sigprocmask(SIG_BLOCK, &sigint, &old_mask);
	if (sigaction(SIGINT, NULL, &ks_prev_sigint) == 0 &&
		((ks_prev_sigint.sa_flags & SA_SIGINFO) ||
		 (ks_prev_sigint.sa_handler != SIG_IGN &&
		  ks_prev_sigint.sa_handler != SIG_DFL)))
	{
#if PG_VERSION_NUM < 180000
		if (!(ks_prev_sigint.sa_flags & SA_SIGINFO))
			ks_prev_sigint.sa_handler = pqsignal(SIGINT, ks_sigint_placeholder);
#endif
		act = ks_prev_sigint;
		act.sa_sigaction = ks_sigint_action;
		act.sa_flags |= SA_SIGINFO;
		if (sigaction(SIGINT, &act, NULL) != 0)
			(void) sigaction(SIGINT, &ks_prev_sigint, NULL);
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	ks_check_cancel_handler();
	RegisterXactCallback(ks_cancel_xact_callback, NULL);
}

/*
 * Publish in the registry whether SIGINT's handler is still this library's:
 * a cancel by SQL_ID is refused before it is sent to a session whose
 * handler another library replaced.  Called as the handler is installed,
 * as each statement is parsed, after each utility statement (LOAD) and at
 * each transaction's end: one system call, and the registry lock only when
 * the answer changes.
 */
void
ks_check_cancel_handler(void)
{
	static unsigned long long seen_adds = 0;
	static bool seen = false;
	unsigned long long adds = 0;
	bool		ours;

	if (ks_my_session_id() == 0)
		return;

	/*
	 * Another library's _PG_init is what replaces the handler: look again
	 * only when the process has loaded an object since the last look.  The
	 * dynamic loader counts the objects ever added; reading that count takes
	 * its lock, not a system call, so that every statement pays nothing
	 * measurable.
	 */
	dl_iterate_phdr(ks_loaded_objects, &adds);
	if (seen && adds == seen_adds && adds != ~0ULL)
		return;
	seen = true;
	seen_adds = adds;
	ours = ks_sigint_is_ours();
	if (ours != ks_handler_ours)
	{
		ks_registry_publish_handler(ours);
		ks_handler_ours = ours;
	}
}

/*
 * Who cancelled this session's statement by SQL_ID, for the DETAIL of its
 * 57014: the asker, if this statement is the one the handler took.  Once
 * told, or for another statement, forgotten.
 */
static bool
ks_cancel_taken_by(KsKiller *by)
{
	volatile PgBackendStatus *be = MyBEEntry;
	bool		mine;

	if (!ks_taken)
		return false;
	mine = be != NULL && be->st_activity_start_timestamp == ks_taken_stmt_start;
	if (mine)
		*by = ks_taken_by;
	ks_taken = 0;
	return mine;
}

/*
 * Add to this backend's ERROR 57014 who asked for the cancel by SQL_ID
 * that its handler took, even one that stopped waiting; false if none did
 * (then action.c's ks_add_end_detail() says who cancelled it).  Runs
 * inside emit_log_hook, in ErrorContext.
 */
bool
ks_add_cancel_detail(ErrorData *edata)
{
	KsKiller	by;

	if (edata->sqlerrcode != ERRCODE_QUERY_CANCELED ||
		!ks_cancel_taken_by(&by))
		return false;
	edata->detail = ks_cancel_detail(ks_my_session_id(), &by);
	return true;
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
ks_cancel_sql_id(uint32 sid, const KsSession *target, const KsKiller *me,
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
ks_cancel_statement(uint32 sid, const KsSession *target, const KsKiller *me)
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
		ks_record_error(&me, action, ks_cancel_signalled, context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PG_RETURN_BOOL(answer);
}
