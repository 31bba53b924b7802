/*-------------------------------------------------------------------------
 *
 * registry.h
 *		The registry of client session IDs: what other files may ask of it.
 *
 * The shared state and its lock are private to registry.c; every
 * acquisition of the lock is there.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  registry.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_REGISTRY_H
#define KS_REGISTRY_H

#include "datatype/timestamp.h"

struct Port;

/* Longest "address:port" text kept for a session. */
#define KS_HOST_LEN		64

/* What a session can be marked for. */
typedef enum KsAction
{
	KS_KILL,					/* end now (SIGTERM) */
	KS_DISCONNECT,				/* end once its transaction has ended */
	KS_CANCEL					/* cancel its statement (SIGINT) */
} KsAction;

#define KS_NUM_ACTIONS	3

/*
 * Where a session's kill_session.max_idle_blocker_time comes from: a
 * superuser's session is held to it only when it was set for its role.
 */
typedef enum KsLimitScope
{
	KS_LIMIT_SERVER,			/* the server's (postgresql.conf, ALTER
								 * SYSTEM, the default), which the checker
								 * reads for itself, as a reload may not have
								 * reached an idle session yet */
	KS_LIMIT_ALL_ROLES,			/* ALTER ROLE ALL SET, as the session
								 * connected */
	KS_LIMIT_DATABASE,			/* ALTER DATABASE ... SET */
	KS_LIMIT_ROLE				/* ALTER ROLE ... SET, or a superuser's SET */
} KsLimitScope;

/* A copy of one session's entry, taken under the registry lock. */
typedef struct KsSession
{
	pid_t		pid;
	uint32		sid;			/* client session ID */
	int			procno;			/* its PGPROC's number */
	Oid			roleid;			/* its PGPROC's role; InvalidOid while still
								 * starting */
	bool		killed;			/* marked by a kill */
	bool		disconnect_pending; /* marked to end after its transaction */
	TimestampTz connect_time;	/* when it registered */
	NameData	user_name;		/* role it authenticated as */
	NameData	db_name;		/* database it connected to */
	char		host[KS_HOST_LEN];	/* "address:port" or "localhost" */
	int			idle_limit_ms;	/* its max_idle_blocker_time, 0 for none */
	KsLimitScope idle_limit_scope;	/* and where it comes from */
	bool		handler_ours;	/* its SIGINT handler is this library's */
} KsSession;

/* Longest reason an action may give, in bytes with its terminator. */
#define KS_REASON_LEN	256

/* Who marked a session, as recorded in its entry. */
typedef struct KsKiller
{
	uint32		sid;			/* 0 when the killer has no session ID */
	int			pid;
	NameData	role;
	char		reason[KS_REASON_LEN];	/* the caller's reason, "" if none */
	TimestampTz deadline;		/* a disconnect's drain deadline, 0 if none */
	bool		drain;			/* a kill at that deadline, by the checker */
	bool		policy;			/* the end of an idle blocker, by the checker
								 * under kill_session.max_idle_blocker_time */
	bool		recorded;		/* its history row is complete */
	uint64		history_seq;	/* the action's row in the history, 0 if none */

	/*
	 * The session of another node on whose behalf the killer said it acted
	 * (kill_session.origin); origin_pid 0 if none.  origin_vouched: the
	 * killer logged in as the user of that role's mapping for this node, as a
	 * forwarding from that node does.
	 */
	int			origin_node;
	int			origin_pid;
	int64		origin_sid;
	NameData	origin_role;
	bool		origin_vouched;
} KsKiller;

/* What ks_registry_mark_and_signal() found. */
typedef enum KsMarkResult
{
	KS_MARK_DONE,				/* marked (and signalled, if asked) */
	KS_MARK_GONE,				/* the session is not there any more */
	KS_MARK_SIGNAL_FAILED		/* marked, but kill() failed: see errno */
} KsMarkResult;

/*
 * A cancel of one statement by its SQL_ID, as the session's SIGINT handler
 * answers it: only the session knows, at the moment the signal arrives,
 * whether it still runs that statement.  The session's slot holds the ask,
 * who made it and its state; the asker's own slot holds the answer to its
 * ask (an answer box), so that the answer outlives the session.
 */
typedef enum KsSqlCancel
{
	KS_SQL_CANCEL_NONE,			/* none asked: SIGINT cancels as always */
	KS_SQL_CANCEL_RESERVED,		/* an asker is logging its ask: not sent yet,
								 * and SIGINT still cancels as always */
	KS_SQL_CANCEL_ASKED,		/* asked, not answered yet */
	KS_SQL_CANCEL_TAKEN,		/* it ran that statement: cancelled */
	KS_SQL_CANCEL_REFUSED,		/* it ran another, or none: left alone */
	KS_SQL_CANCEL_ABANDONED,	/* asked, and the caller stopped waiting:
								 * decided all the same when the signal comes,
								 * the asker still named */
	KS_SQL_CANCEL_ENDED			/* the asker's view only: the session ended
								 * without answering */
} KsSqlCancel;

/*
 * What an ask of a session's SIGINT handler is for: a cancel by SQL_ID, or
 * the end of an idle session that blocks others, which it takes only if
 * it is still in the idle period the asker saw.
 */
typedef enum KsAskKind
{
	KS_ASK_SQL_ID,
	KS_ASK_IDLE_END
} KsAskKind;

/* How a session waits for its client. */
typedef enum KsIdleKind
{
	KS_IDLE_NONE,				/* it does not: it runs, or is not a session */
	KS_IDLE_OUTSIDE,			/* idle, with no transaction */
	KS_IDLE_IN_XACT,			/* idle in a transaction, failed or not */
	KS_IDLE_COPY,				/* in a COPY FROM STDIN, waiting for data */
	KS_IDLE_MESSAGES			/* in a statement of the extended protocol,
								 * waiting for its client's next message */
} KsIdleKind;

/*
 * One idle period of a session: its kind and state, what tells it from the
 * next one (the state's start; for a COPY the bytes it had read and the
 * statement's start), and since when it lasts, as far as is known.
 */
typedef struct KsIdlePeriod
{
	KsIdleKind	kind;
	int			state;			/* its BackendState */
	int64		token;
	TimestampTz started;		/* a COPY's statement's start */
	TimestampTz since;
} KsIdlePeriod;

/* Longest DETAIL an idle end carries to its session, with the terminator. */
#define KS_IDLE_DETAIL_LEN	512

/* An ask as the asked session's handler reads it. */
typedef struct KsAskSeen
{
	KsAskKind	kind;
	int64		query_id;		/* KS_ASK_SQL_ID: the statement's */
	KsIdlePeriod period;		/* KS_ASK_IDLE_END: the period seen */
	KsKiller	by;
	char		detail[KS_IDLE_DETAIL_LEN]; /* KS_ASK_IDLE_END: the DETAIL */
} KsAskSeen;

/* What ks_registry_reserve_cancel() and ks_registry_send_cancel() did. */
typedef enum KsAskResult
{
	KS_ASK_SENT,				/* reserved, or asked and signalled */
	KS_ASK_BUSY,				/* another caller's ask is unanswered */
	KS_ASK_GONE,				/* the session is not there any more */
	KS_ASK_NOT_OURS,			/* its SIGINT handler is another library's */
	KS_ASK_SIGNAL_FAILED		/* kill() failed: see errno */
} KsAskResult;

/* The ask this process sends, as ks_registry_reserve_cancel() numbers it. */
typedef struct KsAsk
{
	uint32		sid;
	pid_t		pid;
	uint32		seq;			/* unique among the server's asks */
} KsAsk;

/*
 * The signal to ks_registry_mark_and_signal() that wakes a session to look
 * at its mark without ending anything: a sinval catchup interrupt, which a
 * backend waiting for its client serves at once with an empty transaction
 * (whose end runs the transaction callbacks) and any other backend serves
 * as it next starts a transaction or waits for its client.
 */
#define KS_SIGNAL_WAKE	(-1)

/* A session whose drain deadline has passed, and who marked it. */
typedef struct KsDrain
{
	KsSession	session;
	KsKiller	by;
} KsDrain;

/*
 * The checker (checker.c): whether it runs, and waking it when a deadline
 * is set; the sessions whose deadline has passed at now, at most max, and
 * the next deadline after now (0 if none).
 */
extern void ks_registry_set_checker(bool running);
extern bool ks_registry_checker_running(void);
extern void ks_registry_wake_checker(void);
extern int	ks_registry_drains_due(TimestampTz now, KsDrain *due, int max,
								   TimestampTz *next);

/*
 * What a session's process is doing, from its PGPROC: kept by the backend
 * itself whatever track_activities says.
 */
typedef struct KsProcState
{
	bool		in_transaction; /* it has a transaction (a local ID) */
	bool		reading_client; /* it waits for a message from its client */
	uint32		lxid;			/* its local transaction ID, 0 if none */
} KsProcState;

/* Shared memory, from _PG_init's hooks. */
extern void ks_registry_shmem_request(void);
extern void ks_registry_shmem_startup(void);

/*
 * kill_session.node_id, and the session ID a local one is shown as:
 * node * 10^10 + sid on a node of a cluster, sid itself on a single server.
 */
extern void ks_define_node_setting(void);
extern int	ks_node_id(void);
extern int64 ks_global_id(uint32 sid);

/* The 55000 error of every entry point when the library was not preloaded. */
extern void ks_check_loaded(void);
extern bool ks_registry_loaded(void);

/* This backend's own entry. */
extern void ks_register_session(struct Port *port);
extern uint32 ks_my_session_id(void);
extern bool ks_my_mark(KsAction action, uint32 *my_sid, KsKiller *by);

/* Find a session by ID: a copy of its entry, or false. */
extern bool ks_registry_lookup(uint32 sid, KsSession *session);

/*
 * Mark the session sid, still held by process pid, for action by by and,
 * if signo is not 0, open a pidfd on it (if pidfd is not NULL) and send it
 * signo (or wake it: KS_SIGNAL_WAKE), all under the registry lock, so that
 * the signal can reach no other process.  If before is not NULL, it is set
 * to what the session was doing just before it was signalled.
 */
extern KsMarkResult ks_registry_mark_and_signal(uint32 sid, pid_t pid,
												KsAction action,
												const KsKiller *by,
												int signo, int *pidfd,
												KsProcState *before);
extern void ks_registry_unmark(uint32 sid, pid_t pid, KsAction action);

/*
 * Ask the session sid, still held by pid, to cancel its statement if it
 * runs one with query_id, in two steps: reserve the ask (who asks, for
 * which query ID; no other ask can come in between), which the caller
 * logs, then send it (SIGINT), both under the registry lock.  The answer,
 * and the start of the statement taken, come back through
 * ks_registry_cancel_answer(); ks_registry_end_cancel() ends the caller's
 * part, leaving an unanswered ask to the session (KS_SQL_CANCEL_ABANDONED).
 */
extern KsAskResult ks_registry_reserve_cancel(uint32 sid, pid_t pid,
											  const KsKiller *by,
											  int64 query_id, KsAsk *ask);
extern KsAskResult ks_registry_reserve_idle_end(uint32 sid, pid_t pid,
												const KsKiller *by,
												const KsIdlePeriod *period,
												const char *detail,
												KsAsk *ask);
extern KsAskResult ks_registry_send_cancel(const KsAsk *ask);
extern KsSqlCancel ks_registry_cancel_answer(const KsAsk *ask,
											 TimestampTz *stmt_start);
extern void ks_registry_end_cancel(const KsAsk *ask);

/* This backend's side, from its SIGINT handler: no lock taken. */
extern KsSqlCancel ks_my_cancel_ask(KsAskSeen *seen);
extern void ks_my_cancel_answer(KsSqlCancel asked, KsSqlCancel answer,
								TimestampTz stmt_start);

/*
 * This backend's kill_session.max_idle_blocker_time, published in its slot
 * as it connects and whenever the setting changes.
 */
extern void ks_registry_publish_limit(int limit_ms, KsLimitScope scope);

/*
 * The smallest limit of any session, 0 if none: server_limit_ms for those
 * whose value is the server's.  The checker's; a session that publishes a
 * smaller limit of its own wakes it.
 */
extern int	ks_registry_min_limit(int server_limit_ms);

/*
 * What the checker did, for kill_session_checker: its passes, its reads of
 * the lock graph, and the idle blockers it ended, refused, or logged.
 */
typedef enum KsCheckerCount
{
	KS_CHECK_PASSES,
	KS_CHECK_GRAPH_READS,
	KS_CHECK_ENDED,
	KS_CHECK_LEFT,
	KS_CHECK_LOGGED,
	KS_CHECK_NUM
} KsCheckerCount;

extern void ks_registry_checker_count(KsCheckerCount what);
extern void ks_registry_checker_counts(uint64 *counts, pid_t *pid);

/* This backend's side: whether its SIGINT handler is still the library's. */
extern void ks_registry_publish_handler(bool ours);

/* What the session sid, still held by pid, is doing; false if gone. */
extern bool ks_registry_proc_state(uint32 sid, pid_t pid, KsProcState *state);

/*
 * Every session, sorted by PID if by_pid, else in PGPROC number order;
 * *count is set.  Palloc'd.
 */
extern KsSession *ks_registry_snapshot(int *count, bool by_pid);
extern int	ks_session_pid_cmp(const void *a, const void *b);

#endif							/* KS_REGISTRY_H */
