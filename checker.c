/*-------------------------------------------------------------------------
 *
 * checker.c
 *		kill_session's background worker: it ends the sessions whose drain
 *		deadline has passed, and the idle blockers that
 *		kill_session.max_idle_blocker_time ends (policy.c).
 *
 * disconnect_session(id, post_transaction => true, timeout => t) marks a
 * session to end after its transaction, with a deadline t from the call:
 * Oracle 23ai's KILL SESSION ... TIMEOUT n.  The deadline belongs to the
 * session's mark, not to the caller, so it must hold when the caller has
 * gone: one worker per server (started by the preload, on a hot standby
 * too) sleeps until the earliest deadline, or until a caller wakes it, or
 * a second at most, and kills every session still marked at its deadline,
 * as a kill does: marked under the registry lock, then SIGTERM.  The
 * session's DETAIL says who asked for the drain, why, and that the
 * deadline passed; its LOG line and history row say the same.
 *
 * Each time it wakes it also makes policy.c's pass over idle blockers, and
 * sleeps no longer than the moment the pass says a session could qualify,
 * nor than kill_session.checker_naptime.
 *
 * This file owns the worker.  No file calls it but the entry file, which
 * registers it.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  checker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "kill_session.h"

PGDLLEXPORT void ks_checker_main(Datum arg);

/* kill_session.checker_naptime: the longest the checker sleeps, in ms */
static int	ks_checker_nap_ms = 1000;

/* Sessions ended in one pass, at most. */
#define KS_CHECKER_BATCH	64

void
ks_define_checker_settings(void)
{
	DefineCustomIntVariable("kill_session.checker_naptime",
							"Sets the longest the kill_session checker sleeps between looks at idle blockers.",
							"It wakes sooner when a drain deadline or an idle blocker is due.",
							&ks_checker_nap_ms,
							1000,
							10, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/* Register the checker; from _PG_init, while preloading. */
void
ks_register_checker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 1;
	strlcpy(worker.bgw_library_name, "kill_session", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "ks_checker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "kill_session checker", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "kill_session checker", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

static void
ks_checker_exit(int code, Datum arg)
{
	ks_registry_set_checker(false);
}

/*
 * End the session of d at its drain deadline: its history row first, then
 * the LOG line, then the mark and SIGTERM, as a kill does.
 */
static void
ks_end_drained(KsDrain *d)
{
	KsKiller	by = d->by;
	const KsSession *s = &d->session;

	by.drain = true;
	ks_record_begin(KS_H_DRAIN, s->sid, s, &by);
	switch (ks_registry_mark_and_signal(s->sid, s->pid, KS_KILL, &by, SIGTERM,
										NULL, NULL))
	{
		case KS_MARK_DONE:
			ereport(LOG,
					(errmsg("session " INT64_FORMAT " (pid %d, role %s, database %s) killed at its drain deadline %s, as %s asked",
							ks_global_id(s->sid), (int) s->pid,
							ks_quote_name(NameStr(s->user_name)),
							ks_quote_name(NameStr(s->db_name)),
							timestamptz_to_str(by.deadline),
							ks_describe_marker(&d->by))));
			ks_record_end(&by, KS_H_DRAIN, KS_O_MARKED,
						  "killed at its drain deadline");
			break;
		case KS_MARK_GONE:
			ks_record_end(&by, KS_H_DRAIN, KS_O_NOT_RUNNING,
						  "the session had ended");
			break;
		case KS_MARK_SIGNAL_FAILED:
			ks_record_end(&by, KS_H_DRAIN, KS_O_REFUSED,
						  psprintf("could not send signal: %m"));
			ereport(LOG,
					(errmsg("could not send signal to process %d: %m",
							(int) s->pid)));
			break;
	}
}

void
ks_checker_main(Datum arg)
{
	MemoryContext pass_context;
	KsDrain    *due;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	/*
	 * Connected to no database, as the logical replication launcher is: a
	 * backend status entry of its own, shown in pg_stat_activity, through
	 * which it reads the status of the sessions it ends.
	 */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	pass_context = AllocSetContextCreate(TopMemoryContext,
										 "kill_session checker",
										 ALLOCSET_DEFAULT_SIZES);
	due = MemoryContextAlloc(TopMemoryContext,
							 sizeof(KsDrain) * KS_CHECKER_BATCH);
	before_shmem_exit(ks_checker_exit, (Datum) 0);
	ks_registry_set_checker(true);

	while (!ShutdownRequestPending)
	{
		TimestampTz now = GetCurrentTimestamp();
		TimestampTz next;
		TimestampTz policy_next;
		long		sleep_ms = ks_checker_nap_ms;
		int			n;
		int			i;

		MemoryContextReset(pass_context);
		MemoryContextSwitchTo(pass_context);
		ks_registry_checker_count(KS_CHECK_PASSES);
		n = ks_registry_drains_due(now, due, KS_CHECKER_BATCH, &next);
		for (i = 0; i < n; i++)
			ks_end_drained(&due[i]);
		policy_next = ks_policy_pass(GetCurrentTimestamp());
		MemoryContextSwitchTo(TopMemoryContext);

		if (policy_next != 0 && (next == 0 || policy_next < next))
			next = policy_next;
		if (n == KS_CHECKER_BATCH)
			sleep_ms = 0;
		else if (next != 0)
			sleep_ms = Min(sleep_ms,
						   Max(TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
															   next), 0));
		if (sleep_ms > 0)
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}

	/*
	 * Not 0, which would unregister the worker: one stopped by a signal
	 * (pg_terminate_backend()) is started again after bgw_restart_time, and
	 * the deadlines it keeps hold.  At shutdown the postmaster starts none.
	 */
	proc_exit(1);
}
