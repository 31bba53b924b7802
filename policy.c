/*-------------------------------------------------------------------------
 *
 * policy.c
 *		Idle blockers: kill_session.max_idle_blocker_time, the checker's
 *		pass that enforces it, and the end of an idle session that others
 *		wait for, which the session itself decides.
 *
 * A client session S is ended when it waits for its client (idle, idle in
 * a transaction, or in a COPY FROM STDIN whose data has stalled), another
 * process has waited for a lock that S holds (a hard block, as
 * pg_blocking_pids() has it), and now - max(S idle since, the waiter's
 * wait start) has reached S's limit: Oracle Resource Manager's
 * MAX_IDLE_BLOCKER_TIME, per role or database through PostgreSQL's own
 * ALTER ROLE / ALTER DATABASE ... SET.  A superuser's session is held to it
 * only where it was set for its role.
 *
 * The checker (checker.c) calls ks_policy_pass() each time it wakes.  The
 * pass costs nothing while no process waits for a lock: it looks at every
 * PGPROC's wait event and wait start, with no lock at all.  Only once a
 * waiter is as old as the smallest limit of any session does it read the
 * lock graph (lockgraph.c, the read v$session makes), once.  It returns
 * the earliest moment a session could qualify, for the checker to sleep
 * until then.
 *
 * The session decides.  The checker asks it through the registry's ask
 * (the one a cancel by SQL_ID uses), naming the idle period it saw; the
 * session's SIGINT handler (cancel_handler.c) takes the end only if it is
 * still in that period, with no byte of a new message arrived, and ends
 * as SIGTERM would end it; a transaction cannot commit after that.  A
 * COMMIT that arrives at that instant is carried out, and the session
 * left alone.  kill_blockers() ends idle heads the same way.
 *
 * With kill_session.policy_action = log nothing is ended: one LOG line
 * per session and idle period says what would have been.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  policy.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <signal.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "kill_session.h"
#include "lockgraph.h"

/* kill_session.policy_action */
typedef enum KsPolicyAction
{
	KS_POLICY_LOG,
	KS_POLICY_KILL
} KsPolicyAction;

static const struct config_enum_entry ks_policy_actions[] = {
	{"log", KS_POLICY_LOG, false},
	{"kill", KS_POLICY_KILL, false},
	{NULL, 0, false}
};

/* kill_session.max_idle_blocker_time, in ms, and where it came from */
static int	ks_idle_limit_ms = 0;
static KsLimitScope ks_idle_limit_scope = KS_LIMIT_SERVER;
static int	ks_policy_action = KS_POLICY_KILL;

/* How long the checker waits for a session's answer, and for its exit. */
#define KS_ANSWER_MS	1000
#define KS_EXIT_MS		1000

/* Blocked processes named in a DETAIL, at most. */
#define KS_NAMED_WAITERS	4

/* Idle blockers asked to end in one pass, at most. */
#define KS_POLICY_BATCH		64

/* An idle end asked of a session, and what came of it. */
typedef struct KsIdleAsk
{
	KsSession	session;
	KsIdlePeriod period;
	KsKiller	by;
	KsAsk		ask;
	bool		pending;		/* sent, not answered yet */
	int			pidfd;			/* once taken: for its exit; -2 gone */
	KsIdleEnd	result;
}			KsIdleAsk;

/*
 * The check hook keeps where the value comes from, in the setting's extra,
 * which PostgreSQL keeps and restores with the value.
 */
static bool
ks_check_idle_limit(int *newval, void **extra, GucSource source)
{
	KsLimitScope *scope = ks_guc_malloc(sizeof(KsLimitScope));

	if (scope == NULL)
		return false;
	switch (source)
	{
		case PGC_S_GLOBAL:
			*scope = KS_LIMIT_ALL_ROLES;
			break;
		case PGC_S_DATABASE:
			*scope = KS_LIMIT_DATABASE;
			break;
		case PGC_S_USER:
		case PGC_S_DATABASE_USER:
		case PGC_S_CLIENT:
		case PGC_S_OVERRIDE:
		case PGC_S_INTERACTIVE:
		case PGC_S_TEST:
		case PGC_S_SESSION:
			*scope = KS_LIMIT_ROLE;
			break;
		default:
			*scope = KS_LIMIT_SERVER;
			break;
	}
	*extra = scope;
	return true;
}

static void
ks_assign_idle_limit(int newval, void *extra)
{
	ks_idle_limit_scope = extra ? *(KsLimitScope *) extra : KS_LIMIT_SERVER;
	ks_registry_publish_limit(newval, ks_idle_limit_scope);
}

void
ks_define_policy_settings(void)
{
	DefineCustomIntVariable("kill_session.max_idle_blocker_time",
							"Ends a client session that others have waited this long for while it waited for its client.",
							"A session idle, idle in a transaction, or in a COPY FROM STDIN whose data has stalled, "
							"is ended once another process has waited this long for a lock it holds, counted "
							"from the later of the two starts. Zero turns it off. Superusers' sessions are held "
							"to it only where it is set for their role.",
							&ks_idle_limit_ms,
							0,
							0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							ks_check_idle_limit, ks_assign_idle_limit, NULL);
	DefineCustomEnumVariable("kill_session.policy_action",
							 "What is done to an idle blocker: kill, or only log.",
							 "With log, one LOG line per session and idle period says what would have been done.",
							 &ks_policy_action,
							 KS_POLICY_KILL,
							 ks_policy_actions,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
}

/* This session's limit, published as it registers. */
void
ks_policy_publish(void)
{
	ks_registry_publish_limit(ks_idle_limit_ms, ks_idle_limit_scope);
}

/*
 * The limit session s is held to, 0 for none: a server-wide value as the
 * checker read it last (an idle session may not have taken a reload yet),
 * else the session's own.  A superuser's session is exempt unless it was
 * set for its role; superuser says whether it is one.
 */
static int
ks_limit_of(const KsSession *s, bool superuser)
{
	if (superuser && s->idle_limit_scope != KS_LIMIT_ROLE)
		return 0;
	return s->idle_limit_scope == KS_LIMIT_SERVER ? ks_idle_limit_ms :
		s->idle_limit_ms;
}

/* "2s" or "150ms", as SHOW shows the setting */
static char *
ks_limit_text(int ms)
{
	if (ms % 1000 == 0)
		return psprintf("%ds", ms / 1000);
	return psprintf("%dms", ms);
}

/*
 * How the session s waits for its client now, if it does, as its PGPROC
 * and status entry say: the kind and token of its idle period, and since
 * when (for a COPY, 0: its status entry does not say).
 */
bool
ks_idle_period_of(const KsSession *s, KsIdlePeriod *period)
{
	PGPROC	   *proc = GetPGProcByNumber(s->procno);
	KsActivity	activity;

	memset(period, 0, sizeof(KsIdlePeriod));
	if (*(volatile uint32 *) &proc->wait_event_info != WAIT_EVENT_CLIENT_READ ||
		!ks_read_activity(s->procno, s->pid, &activity, NULL, false))
		return false;
	period->state = (int) activity.state;
	period->token = (int64) activity.state_start;
	period->since = activity.state_start;
	switch (activity.state)
	{
		case STATE_IDLE:
			period->kind = KS_IDLE_OUTSIDE;
			break;

			/*
			 * A failed transaction keeps the locks of its top level when a
			 * subtransaction failed, and session locks stay through any.
			 */
		case STATE_IDLEINTRANSACTION:
		case STATE_IDLEINTRANSACTION_ABORTED:
			period->kind = KS_IDLE_IN_XACT;
			break;
		case STATE_RUNNING:
			if (activity.copy_from_client)
			{
				period->kind = KS_IDLE_COPY;
				period->token = activity.copy_bytes;
				period->started = activity.stmt_start;
				period->since = 0;
			}
			else
			{
				/* It began to wait after its statement's message ran. */
				period->kind = KS_IDLE_MESSAGES;
				period->since = 0;
			}
			break;
		default:
			return false;
	}
	/* Still waiting after the read: the state is that of this wait. */
	return *(volatile uint32 *) &proc->wait_event_info == WAIT_EVENT_CLIENT_READ;
}

/* What the session was doing, for a DETAIL: "was idle", ... */
const char *
ks_idle_words(const KsIdlePeriod *period)
{
	switch (period->kind)
	{
		case KS_IDLE_OUTSIDE:
			return "was idle";
		case KS_IDLE_IN_XACT:
			return period->state == STATE_IDLEINTRANSACTION_ABORTED ?
				"was idle in its failed transaction" :
				"was idle in its transaction";
		case KS_IDLE_COPY:
			return "waited for the data of its COPY";
		case KS_IDLE_MESSAGES:
			return "waited for its client's next message in the middle of a statement";
		default:
			return "was idle";
	}
}

/*
 * Ask the session of ask to end if it is still in the idle period seen,
 * with this DETAIL: its history row is written first.  False, with
 * ask->result and the row complete, when the ask could not be sent.
 */
static bool
ks_idle_send(KsIdleAsk * ask, const char *detail)
{
	const KsSession *s = &ask->session;
	KsAskResult sent;

	ask->pending = false;
	ask->pidfd = -1;
	ks_record_begin(KS_H_IDLE_BLOCKER, s->sid, s, &ask->by);
	sent = ks_registry_reserve_idle_end(s->sid, s->pid, &ask->by,
										&ask->period, detail, &ask->ask);
	if (sent == KS_ASK_SENT)
		sent = ks_registry_send_cancel(&ask->ask);
	switch (sent)
	{
		case KS_ASK_SENT:
			ask->pending = true;
			return true;
		case KS_ASK_GONE:
			ask->result = KS_IDLE_END_GONE;
			ks_record_end(&ask->by, KS_H_IDLE_BLOCKER, KS_O_NOT_RUNNING,
						  "the session had ended");
			break;
		case KS_ASK_BUSY:
			ask->result = KS_IDLE_END_BUSY;
			ks_record_end(&ask->by, KS_H_IDLE_BLOCKER, KS_O_REFUSED,
						  "another ask of the session was unanswered");
			break;
		case KS_ASK_NOT_OURS:
			ask->result = KS_IDLE_END_NOT_OURS;
			ks_record_end(&ask->by, KS_H_IDLE_BLOCKER, KS_O_REFUSED,
						  "its SIGINT handler is another library's");
			break;
		case KS_ASK_SIGNAL_FAILED:
			ask->result = KS_IDLE_END_FAILED;
			ks_record_end(&ask->by, KS_H_IDLE_BLOCKER, KS_O_REFUSED,
						  psprintf("could not send signal: %m"));
			break;
	}
	return false;
}

/* Collect the answer of ask, once it came or the time is up (final). */
static void
ks_idle_answered(KsIdleAsk * ask, KsSqlCancel answer)
{
	ask->pending = false;
	ks_registry_end_cancel(&ask->ask);
	switch (answer)
	{
		case KS_SQL_CANCEL_TAKEN:

			/*
			 * The session is ending.  Marked as killed by its asker, so that
			 * it writes its end on the row, and waited for below.
			 */
			ask->result = KS_IDLE_END_DONE;
			if (ks_registry_mark_and_signal(ask->session.sid, ask->session.pid,
											KS_KILL, &ask->by, 0, &ask->pidfd,
											NULL) != KS_MARK_DONE)
				ask->pidfd = -2;	/* gone already */
			break;
		case KS_SQL_CANCEL_REFUSED:
			ask->result = KS_IDLE_END_LEFT;
			ks_record_end(&ask->by, KS_H_IDLE_BLOCKER, KS_O_REFUSED,
						  "it was no longer idle: its client had sent a message");
			break;
		case KS_SQL_CANCEL_ENDED:
			ask->result = KS_IDLE_END_GONE;
			ks_record_end(&ask->by, KS_H_IDLE_BLOCKER, KS_O_NOT_RUNNING,
						  "the session had ended");
			break;
		default:
			ask->result = KS_IDLE_END_NO_ANSWER;
			ks_record_end(&ask->by, KS_H_IDLE_BLOCKER, KS_O_UNKNOWN,
						  psprintf("not answered within %d ms; it may still end",
								   KS_ANSWER_MS));
			break;
	}
}

/*
 * Wait for the answers of asks[0..n), all at once, at most KS_ANSWER_MS,
 * then for the exits of those that took their end, at most exit_ms in all;
 * each gets its result and its row's outcome.  A caller cancelled
 * meanwhile leaves the unanswered asks to their sessions, which still
 * decide.
 */
static void
ks_idle_collect(KsIdleAsk * asks, int n, int exit_ms)
{
	MemoryContext context = CurrentMemoryContext;
	TimestampTz deadline;
	int			i;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KS_ANSWER_MS);
	PG_TRY();
	{
		for (;;)
		{
			bool		waiting = false;
			bool		late = GetCurrentTimestamp() >= deadline;

			for (i = 0; i < n; i++)
			{
				KsSqlCancel answer;
				TimestampTz stmt_start;

				if (!asks[i].pending)
					continue;
				answer = ks_registry_cancel_answer(&asks[i].ask, &stmt_start);
				if (answer != KS_SQL_CANCEL_ASKED || late)
					ks_idle_answered(&asks[i], answer);
				else
					waiting = true;
			}
			if (!waiting)
				break;
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}

		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), exit_ms);
		for (i = 0; i < n; i++)
		{
			long		left;
			bool		gone;

			if (asks[i].result != KS_IDLE_END_DONE || asks[i].by.recorded)
				continue;
			left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			gone = asks[i].pidfd == -2 ||
				(exit_ms > 0 && ks_wait_gone(asks[i].session.pid, asks[i].pidfd,
											 Max(left, 1)));
			if (asks[i].pidfd >= 0)
				close(asks[i].pidfd);
			asks[i].pidfd = -1;
			if (gone)
				ks_record_end(&asks[i].by, KS_H_IDLE_BLOCKER, KS_O_EXITED, NULL);
			else
				ks_record_end(&asks[i].by, KS_H_IDLE_BLOCKER, KS_O_MARKED,
							  psprintf("it did not end within %d ms", exit_ms));
		}
	}
	PG_CATCH();
	{
		for (i = 0; i < n; i++)
		{
			if (asks[i].pending)
				ks_registry_end_cancel(&asks[i].ask);
			if (asks[i].pidfd >= 0)
				close(asks[i].pidfd);
			ks_record_error(&asks[i].by, KS_H_IDLE_BLOCKER, true, false,
							context);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Ask the session s to end if it is still in the idle period seen, with
 * this DETAIL, and wait for its answer and its exit (at most exit_ms): its
 * history row is written first, and completed with the outcome.
 */
KsIdleEnd
ks_end_idle(const KsSession *s, const KsIdlePeriod *period, KsKiller *by,
			const char *detail, int exit_ms)
{
	KsIdleAsk	ask;

	memset(&ask, 0, sizeof(ask));
	ask.session = *s;
	ask.period = *period;
	ask.by = *by;
	if (ks_idle_send(&ask, detail))
		ks_idle_collect(&ask, 1, exit_ms);
	*by = ask.by;
	return ask.result;
}

/* ---- the checker's pass ---- */

/* A process waiting for a lock, and since when, as its PGPROC says. */
typedef struct KsLockWait
{
	int			leader;			/* its group leader's PID */
	TimestampTz start;
} KsLockWait;

/* A session ended or logged this period, and what it held up. */
typedef struct KsCandidate
{
	KsSession	session;
	KsIdlePeriod period;
	int			limit_ms;
	int			nwaiters;
	StringInfoData waiters;		/* "session N (pid P) for 2.0 s, ..." */
} KsCandidate;

/*
 * A session logged, or asked to end, in this idle period: not again
 * until it is in another.
 */
typedef struct KsLogged
{
	pid_t		pid;
	KsIdlePeriod period;
	bool		logged;			/* in the log mode, rather than asked */
} KsLogged;

/* A COPY seen stalled: since when its bytes have stood still. */
typedef struct KsStall
{
	pid_t		pid;
	TimestampTz started;		/* its statement's start */
	int64		bytes;
	TimestampTz since;
} KsStall;

#define KS_MAX_REMEMBERED	1024

static KsLogged *ks_logged = NULL;
static int	ks_nlogged = 0;
static KsStall *ks_stalls = NULL;
static int	ks_nstalls = 0;

/*
 * Every process waiting for a heavyweight lock, read without any lock: the
 * wait event is set only around the sleep in the lock's queue, and the
 * wait start is written before it.  *oldest: the earliest start, 0 if none.
 */
static int
ks_lock_waits(KsLockWait *waits, TimestampTz *oldest)
{
	int			n = 0;
	int			i;

	*oldest = 0;
	for (i = 0; i < ProcGlobal->allProcCount; i++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[i];
		uint32		info = *(volatile uint32 *) &proc->wait_event_info;
		TimestampTz start;
		PGPROC	   *leader;
		int			pid;

		if ((info & 0xFF000000) != PG_WAIT_LOCK)
			continue;
		start = (TimestampTz) pg_atomic_read_u64(&proc->waitStart);
		pid = *(volatile int *) &proc->pid;
		leader = *(PGPROC *volatile *) &proc->lockGroupLeader;
		if (start == 0 || pid == 0)
			continue;
		if (waits != NULL)
		{
			waits[n].leader = leader != NULL ? leader->pid : pid;
			waits[n].start = start;
		}
		n++;
		if (*oldest == 0 || start < *oldest)
			*oldest = start;
	}
	return n;
}

/* The earliest wait start of leader's group, 0 if it waits no more. */
static TimestampTz
ks_wait_start(const KsLockWait *waits, int n, int leader)
{
	TimestampTz start = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (waits[i].leader == leader && (start == 0 || waits[i].start < start))
			start = waits[i].start;
	}
	return start;
}

/*
 * Since when a COPY has stalled, or a statement has waited for its next
 * message: from the first pass that saw it so, as its status entry does
 * not say.  Passes look while any
 * process waits for a lock, so a stall is timed at most one nap late, and
 * never early.
 */
static TimestampTz
ks_stall_since(const KsSession *s, const KsIdlePeriod *period, TimestampTz now,
			   KsStall *seen, int *nseen)
{
	int			i;

	for (i = 0; i < ks_nstalls; i++)
	{
		if (ks_stalls[i].pid == s->pid && ks_stalls[i].bytes == period->token &&
			ks_stalls[i].started == period->started)
		{
			if (*nseen < KS_MAX_REMEMBERED)
				seen[(*nseen)++] = ks_stalls[i];
			return ks_stalls[i].since;
		}
	}
	if (*nseen < KS_MAX_REMEMBERED)
	{
		seen[*nseen].pid = s->pid;
		seen[*nseen].started = period->started;
		seen[*nseen].bytes = period->token;
		seen[*nseen].since = now;
		(*nseen)++;
	}
	return now;
}

/* Since when the COPY of s has stood still, as this pass saw. */
static TimestampTz
ks_stall_seen(const KsSession *s, const KsIdlePeriod *period, TimestampTz now)
{
	int			i;

	for (i = 0; i < ks_nstalls; i++)
	{
		if (ks_stalls[i].pid == s->pid && ks_stalls[i].bytes == period->token &&
			ks_stalls[i].started == period->started)
			return ks_stalls[i].since;
	}
	return now;
}

static bool
ks_logged_before(pid_t pid, const KsIdlePeriod *period, bool logged)
{
	int			i;

	for (i = 0; i < ks_nlogged; i++)
	{
		if (ks_logged[i].pid == pid && ks_logged[i].logged == logged &&
			ks_logged[i].period.kind == period->kind &&
			ks_logged[i].period.token == period->token &&
			ks_logged[i].period.started == period->started)
			return true;
	}
	return false;
}

/* Forget the sessions logged in a period they have left. */
static void
ks_forget_logged(void)
{
	int			kept = 0;
	int			i;

	for (i = 0; i < ks_nlogged; i++)
	{
		PGPROC	   *proc = BackendPidGetProc(ks_logged[i].pid);
		KsActivity	activity;
		bool		same = false;

		if (proc != NULL &&
			ks_read_activity(KS_PROCNO(proc), ks_logged[i].pid, &activity,
							 NULL, false))
		{
			if (ks_logged[i].period.kind == KS_IDLE_COPY)
				same = activity.copy_from_client &&
					activity.copy_bytes == ks_logged[i].period.token &&
					activity.stmt_start == ks_logged[i].period.started;
			else
				same = (int64) activity.state_start == ks_logged[i].period.token;
		}
		if (same)
			ks_logged[kept++] = ks_logged[i];
	}
	ks_nlogged = kept;
}

/* "session N (pid P)" or "process P", for a waiter of the graph */
static char *
ks_waiter_name(const KsLockGraph *graph, int pid)
{
	const KsGraphNode *node = ks_lock_graph_node(graph, pid);

	if (node != NULL && node->sid != 0)
		return psprintf("session " INT64_FORMAT " (pid %d)", node->sid, pid);
	return psprintf("process %d", pid);
}

/* Whether the role of a session is a superuser, from the catalog. */
static bool
ks_role_is_superuser(Oid roleid)
{
	bool		result;

	if (!OidIsValid(roleid))
		return true;
	if (IsTransactionState())
		return superuser_arg(roleid);
	StartTransactionCommand();
	result = superuser_arg(roleid);
	CommitTransactionCommand();
	return result;
}

/* The DETAIL and LOG text of candidate c's limit */
static char *
ks_limit_detail(const KsCandidate *c)
{
	return psprintf("kill_session.max_idle_blocker_time is %s%s",
					ks_limit_text(c->limit_ms),
					c->session.idle_limit_scope == KS_LIMIT_ROLE ? ", set for its role" :
					c->session.idle_limit_scope == KS_LIMIT_DATABASE ?
					", set for its database" :
					c->session.idle_limit_scope == KS_LIMIT_ALL_ROLES ?
					", set for all roles" : "");
}

/*
 * Log one idle blocker, or make its ask: false if nothing is to be asked
 * of it (logged, or asked before in this idle period).
 */
static bool
ks_policy_prepare(KsCandidate *c, KsIdleAsk * ask)
{
	const KsSession *s = &c->session;
	char	   *limit = ks_limit_detail(c);
	bool		log_only = ks_policy_action == KS_POLICY_LOG;

	/*
	 * Once per idle period: logged, or asked and not ended (it did not
	 * answer, another ask was in the way, its handler is not ours).
	 */
	if (ks_logged_before(s->pid, &c->period, log_only))
		return false;
	if (ks_nlogged < KS_MAX_REMEMBERED)
	{
		ks_logged[ks_nlogged].pid = s->pid;
		ks_logged[ks_nlogged].period = c->period;
		ks_logged[ks_nlogged].logged = log_only;
		ks_nlogged++;
	}

	if (log_only)
	{
		ks_registry_checker_count(KS_CHECK_LOGGED);
		ereport(LOG,
				(errmsg("session " INT64_FORMAT " (pid %d, role %s, database %s) would be ended as an idle blocker (kill_session.policy_action is log)",
						ks_global_id(s->sid), (int) s->pid,
						ks_quote_name(NameStr(s->user_name)),
						ks_quote_name(NameStr(s->db_name))),
				 errdetail("It held up %s; %s.", c->waiters.data, limit)));
		return false;
	}

	memset(ask, 0, sizeof(KsIdleAsk));
	ask->session = *s;
	ask->period = c->period;
	ask->by.pid = MyProcPid;
	ask->by.policy = true;
	strlcpy(ask->by.reason, psprintf("idle blocker: %s", limit), KS_REASON_LEN);
	return ks_idle_send(ask,
						psprintf("Session " INT64_FORMAT " held up %s while it %s; %s.",
								 ks_global_id(s->sid), c->waiters.data,
								 ks_idle_words(&c->period), limit));
}

/* The LOG line of what came of an idle blocker's ask. */
static void
ks_policy_report(const KsCandidate *c, const KsIdleAsk * ask)
{
	const KsSession *s = &c->session;

	switch (ask->result)
	{
		case KS_IDLE_END_DONE:
			ks_registry_checker_count(KS_CHECK_ENDED);
			ereport(LOG,
					(errmsg("session " INT64_FORMAT " (pid %d, role %s, database %s) ended as an idle blocker by kill_session.max_idle_blocker_time",
							ks_global_id(s->sid), (int) s->pid,
							ks_quote_name(NameStr(s->user_name)),
							ks_quote_name(NameStr(s->db_name))),
					 errdetail("It held up %s; %s.", c->waiters.data,
							   ks_limit_detail(c))));
			break;
		case KS_IDLE_END_LEFT:
			ks_registry_checker_count(KS_CHECK_LEFT);
			ereport(LOG,
					(errmsg("session " INT64_FORMAT " (pid %d) left alone: its client sent a message as it was to be ended as an idle blocker",
							ks_global_id(s->sid), (int) s->pid)));
			break;
		default:
			break;
	}
}

/*
 * One pass: end (or log) every session that qualifies now.  Returns the
 * earliest moment another could, 0 if none is known before the checker's
 * nap ends.
 */
TimestampTz
ks_policy_pass(TimestampTz now)
{
	KsLockWait *waits;
	int			nwaits;
	TimestampTz oldest;
	KsSession  *sessions;
	int			nsessions;
	int			min_limit = 0;
	KsLockGraph graph;
	KsCandidate *cands;
	int			ncands = 0;
	KsStall    *stalls;
	int			nstalls = 0;
	KsIdleAsk  *asks;
	int		   *asked;
	int			nasked = 0;
	TimestampTz next = 0;
	int			i;

	if (ks_logged == NULL)
	{
		ks_logged = MemoryContextAlloc(TopMemoryContext,
									   sizeof(KsLogged) * KS_MAX_REMEMBERED);
		ks_stalls = MemoryContextAlloc(TopMemoryContext,
									   sizeof(KsStall) * KS_MAX_REMEMBERED);
	}
	if (ks_nlogged > 0)
		ks_forget_logged();

	/*
	 * No session has a limit: nothing to do.  Else nobody can qualify sooner
	 * than the smallest limit from now, as a waiter that comes now has waited
	 * that long then: the checker never sleeps longer.
	 */
	min_limit = ks_registry_min_limit(ks_idle_limit_ms);
	if (min_limit == 0)
	{
		ks_nstalls = 0;
		return 0;
	}
	next = TimestampTzPlusMilliseconds(now, min_limit);

	/* Nobody waits for a lock. */
	if (ks_lock_waits(NULL, &oldest) == 0)
	{
		ks_nstalls = 0;
		return next;
	}

	/*
	 * The smallest limit of a session that could block anyone now: one that
	 * waits for its client and holds a lock of the main table (a lock taken
	 * by the fast path is moved there before anyone waits for it).
	 */
	min_limit = 0;
	sessions = ks_registry_snapshot(&nsessions, true);
	for (i = 0; i < nsessions; i++)
	{
		int			limit = ks_limit_of(&sessions[i], false);
		PGPROC	   *proc = GetPGProcByNumber(sessions[i].procno);

		if (limit > 0 && (min_limit == 0 || limit < min_limit) &&
			*(volatile uint32 *) &proc->wait_event_info == WAIT_EVENT_CLIENT_READ &&
			(proc->lockGroupLeader != NULL || !ks_proc_holds_no_lock(proc)))
			min_limit = limit;
	}
	if (min_limit == 0)
	{
		ks_nstalls = 0;
		return next;
	}

	/*
	 * The COPYs stalled and the statements waiting for their next message
	 * now, timed from the first pass that saw them: their status entries do
	 * not say when they began to wait.
	 */
	stalls = palloc(sizeof(KsStall) * KS_MAX_REMEMBERED);
	for (i = 0; i < nsessions; i++)
	{
		KsIdlePeriod period;

		if (ks_limit_of(&sessions[i], false) > 0 &&
			ks_idle_period_of(&sessions[i], &period) && period.since == 0)
			(void) ks_stall_since(&sessions[i], &period, now, stalls,
								  &nstalls);
	}
	memcpy(ks_stalls, stalls, sizeof(KsStall) * nstalls);
	ks_nstalls = nstalls;

	/* No waiter is old enough yet for any limit. */
	if (TimestampTzPlusMilliseconds(oldest, min_limit) > now)
		return Min(next, TimestampTzPlusMilliseconds(oldest, min_limit));

	ks_registry_checker_count(KS_CHECK_GRAPH_READS);
	ks_lock_graph_read(&graph, sessions, nsessions);

	/*
	 * The wait starts read again after the graph: a process that has begun
	 * another wait since shows that one's start, which is later, never an
	 * earlier one's.
	 */
	waits = palloc(sizeof(KsLockWait) * ProcGlobal->allProcCount);
	nwaits = ks_lock_waits(waits, &oldest);

	cands = palloc0(sizeof(KsCandidate) * Max(graph.nblocks, 1));
	for (i = 0; i < graph.nblocks; i++)
	{
		const KsBlock *b = &graph.blocks[i];
		KsSession	key;
		KsSession  *s;
		KsIdlePeriod period;
		TimestampTz start;
		TimestampTz from;
		TimestampTz due;
		KsCandidate *c = NULL;
		int			limit;
		int			j;

		if (!b->holds || b->blocker == 0 || b->blocker_id == 0)
			continue;
		key.pid = b->blocker;
		s = bsearch(&key, sessions, nsessions, sizeof(KsSession),
					ks_session_pid_cmp);
		if (s == NULL || (limit = ks_limit_of(s, false)) <= 0)
			continue;
		start = ks_wait_start(waits, nwaits, b->waiter);
		if (start == 0 || !ks_idle_period_of(s, &period))
			continue;
		if (period.since == 0)
			period.since = ks_stall_seen(s, &period, now);
		from = Max(start, period.since);
		due = TimestampTzPlusMilliseconds(from, limit);
		if (due > now)
		{
			next = Min(next, due);
			continue;
		}
		for (j = 0; j < ncands; j++)
		{
			if (cands[j].session.pid == s->pid)
				c = &cands[j];
		}
		if (c == NULL)
		{
			c = &cands[ncands++];
			c->session = *s;
			c->period = period;
			c->limit_ms = limit;
			initStringInfo(&c->waiters);
		}
		if (c->nwaiters < KS_NAMED_WAITERS)
		{
			long		secs;
			int			usecs;

			TimestampDifference(start, now, &secs, &usecs);
			appendStringInfo(&c->waiters, "%s%s for %ld.%01d s",
							 c->nwaiters > 0 ? ", " : "",
							 ks_waiter_name(&graph, b->waiter), secs,
							 usecs / 100000);
		}
		else if (c->nwaiters == KS_NAMED_WAITERS)
			appendStringInfoString(&c->waiters, " and others");
		c->nwaiters++;
	}

	/*
	 * Ask every one at once, at most a batch a pass, then wait for their
	 * answers and exits together, so that one that does not answer delays the
	 * others (and the drains) by a second at most.  Their history rows count
	 * who waited from this read.
	 */
	asks = palloc0(sizeof(KsIdleAsk) * Max(ncands, 1));
	asked = palloc0(sizeof(int) * Max(ncands, 1));
	ks_record_use_graph(&graph);
	PG_TRY();
	{
		for (i = 0; i < ncands; i++)
		{
			/* A superuser's session, with no limit set for its role. */
			if (cands[i].session.idle_limit_scope != KS_LIMIT_ROLE &&
				ks_role_is_superuser(cands[i].session.roleid))
				continue;
			if (nasked == KS_POLICY_BATCH)
			{
				next = now;		/* the rest at once, in the next pass */
				break;
			}
			if (ks_policy_prepare(&cands[i], &asks[nasked]))
				asked[nasked++] = i;
		}
		ks_idle_collect(asks, nasked, KS_EXIT_MS);
		for (i = 0; i < nasked; i++)
			ks_policy_report(&cands[asked[i]], &asks[i]);
	}
	PG_FINALLY();
	{
		ks_record_release_graph();
	}
	PG_END_TRY();
	return next;
}
