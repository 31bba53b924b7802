/*-------------------------------------------------------------------------
 *
 * cancel_handler.c
 *		The session's side of a cancel by SQL_ID: the SIGINT handler every
 *		client session runs, which decides as the signal arrives whether it
 *		still runs the statement asked for, and the DETAIL of a cancel it
 *		took.
 *
 * The handler is installed with sigaction() in front of the one it
 * replaces (PostgreSQL's StatementCancelHandler, or on 17 and later the
 * dispatcher), and calls that one for every SIGINT it does not keep.  The
 * session publishes in the registry whether its handler is still this
 * library's; cancel.c refuses a cancel by SQL_ID of one whose handler
 * another library has replaced.
 *
 * This file owns the handler.  It must not call cancel.c, the caller's
 * side; the entry file installs it and asks it for the DETAIL.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  cancel_handler.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <link.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "access/xact.h"
#include "commands/progress.h"
#include "libpq/libpq-be.h"
#include "libpq/pqsignal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"

#include "kill_session.h"

/*
 * The SIGINT handler this library replaced, which its own calls for every
 * SIGINT it does not keep: PostgreSQL's StatementCancelHandler, or the
 * handler of a library that replaced it before.
 */
static struct sigaction ks_prev_sigint;

/* Whether this session's SIGINT handler was this library's when last seen. */
static bool ks_handler_ours = false;

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
 * The end of this session as an idle blocker that its handler took: the
 * period it was in, who asked (the checker, or a kill_blockers() caller),
 * and the DETAIL it is told.  Written by the handler before it sets
 * ProcDiePending; read as the FATAL is reported.
 */
static volatile sig_atomic_t ks_idle_taken = 0;
static KsIdlePeriod ks_idle_taken_period;
static KsKiller ks_idle_taken_by;
static char ks_idle_taken_detail[KS_IDLE_DETAIL_LEN];

/*
 * Whether this session is still in the idle period the asker saw, at this
 * instant, from its signal handler: it waits in the socket read for its
 * client (the wait event is set only around that wait), in the same state
 * since the same moment (or the same COPY, which has read no more), and no
 * byte of a new message has reached the socket.  Once its next message has
 * arrived, the idle period is over, and what the client sent is carried
 * out: a COMMIT arriving at that instant is never cut off.  (A message the
 * session has begun to read but not received whole is not seen here: it
 * is not carried out, as it never arrived.)
 */
static bool
ks_still_idle(const KsIdlePeriod *period)
{
	volatile PgBackendStatus *be = MyBEEntry;
	int			pending = 0;

	if (be == NULL || MyProc == NULL || MyProcPort == NULL ||
		MyProc->wait_event_info != WAIT_EVENT_CLIENT_READ)
		return false;
	switch (period->kind)
	{
		case KS_IDLE_OUTSIDE:
		case KS_IDLE_IN_XACT:
		case KS_IDLE_MESSAGES:
			if ((int) be->st_state != period->state ||
				(int64) be->st_state_start_timestamp != period->token ||
				(period->kind == KS_IDLE_MESSAGES &&
				 be->st_progress_command == PROGRESS_COMMAND_COPY))
				return false;
			break;
		case KS_IDLE_COPY:
			if (be->st_state != STATE_RUNNING ||
				be->st_progress_command != PROGRESS_COMMAND_COPY ||
				be->st_progress_param[PROGRESS_COPY_BYTES_PROCESSED] != period->token ||
				be->st_activity_start_timestamp != period->started)
				return false;
			break;
		default:
			return false;
	}
	return ioctl(MyProcPort->sock, FIONREAD, &pending) == 0 && pending == 0;
}

/*
 * The SIGINT handler of every client session: PostgreSQL's own, but for a
 * cancel by SQL_ID, which it takes only if it still runs that statement,
 * and for the end of an idle blocker, which it takes only if it is still
 * in the idle period the asker saw: then it ends as SIGTERM would end it.
 * Signal-safe: it reads its own registry slot and status entry, writes its
 * answer without a lock, and calls the handler it replaced for the rest.
 */
static void
ks_sigint_action(int signo, siginfo_t *info, void *context)
{
	int			save_errno = errno;
	KsAskSeen	seen;
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
	ask = ks_my_cancel_ask(&seen);
	if ((ask == KS_SQL_CANCEL_ASKED || ask == KS_SQL_CANCEL_ABANDONED) &&
		seen.kind == KS_ASK_IDLE_END)
	{
		bool		take = !ks_idle_taken && !proc_exit_inprogress &&
			ks_still_idle(&seen.period);

		if (take)
		{
			/* Named before the FATAL can be reported. */
			ks_idle_taken_period = seen.period;
			ks_idle_taken_by = seen.by;
			memcpy(ks_idle_taken_detail, seen.detail, KS_IDLE_DETAIL_LEN);
			ks_idle_taken = 1;
			/* As die() does. */
			InterruptPending = true;
			ProcDiePending = true;
		}
		ks_my_cancel_answer(ask,
							take ? KS_SQL_CANCEL_TAKEN : KS_SQL_CANCEL_REFUSED,
							0);
		if (take)
			SetLatch(MyLatch);
		errno = save_errno;
		return;
	}
	if (ask == KS_SQL_CANCEL_ASKED || ask == KS_SQL_CANCEL_ABANDONED)
	{
		volatile PgBackendStatus *be = MyBEEntry;
		bool		running;
		TimestampTz start = 0;

		running = ActivePortal != NULL && be != NULL &&
			(be->st_state == STATE_RUNNING || be->st_state == STATE_FASTPATH) &&
			(int64) be->st_query_id == seen.query_id;
		if (running)
		{
			/* Named before the cancel can be reported. */
			start = be->st_activity_start_timestamp;
			ks_taken_by = seen.by;
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

/*
 * The FATAL of a session ended as an idle blocker: the policy (or who
 * asked), with PostgreSQL's own code for an idle session's end (25P03 in a
 * transaction or a COPY, 57P05 outside one), and the DETAIL its asker
 * wrote.
 */
static void
ks_idle_end_report(ErrorData *edata)
{
	edata->sqlerrcode = ks_idle_taken_period.kind == KS_IDLE_OUTSIDE ?
		ERRCODE_IDLE_SESSION_TIMEOUT :
		ERRCODE_IDLE_IN_TRANSACTION_SESSION_TIMEOUT;
	if (ks_idle_taken_by.policy)
		edata->message = pstrdup("terminating connection because it held locks others waited for while idle (kill_session.max_idle_blocker_time)");
	else
		edata->message = psprintf("terminating connection because it held locks others waited for while idle, as %s asked",
								  ks_describe_marker(&ks_idle_taken_by));
	edata->detail = pstrdup(ks_idle_taken_detail);
}

/*
 * A transaction may not commit (or be prepared) once this session took its
 * end as an idle blocker: the FATAL comes before it.  Once it is exiting,
 * the transactions of its own cleanup (its temporary tables) commit.  The end was taken
 * while the session waited for its client; any commit after that is a
 * later message's, which the FATAL pending since then stops first, but
 * should none of the interrupt checks on the way see it, this one does.
 */
static void
ks_cancel_xact_callback(XactEvent event, void *arg)
{
	if ((event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE) &&
		ks_idle_taken && !proc_exit_inprogress)
	{
		CHECK_FOR_INTERRUPTS();
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("terminating connection due to administrator command")));
	}
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
 * Make this backend's FATAL 57P01 the report of its end as an idle blocker,
 * if its handler took one; false if not.  Runs inside emit_log_hook, in
 * ErrorContext.
 */
bool
ks_add_idle_end_report(ErrorData *edata)
{
	if (!ks_idle_taken || edata->elevel != FATAL ||
		edata->sqlerrcode != ERRCODE_ADMIN_SHUTDOWN)
		return false;
	ks_idle_end_report(edata);
	return true;
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
