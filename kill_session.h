/*-------------------------------------------------------------------------
 *
 * kill_session.h
 *		The features of kill_session, as the entry file wires them.
 *
 * The files, one idea each:
 *
 * kill_session.c	entry: module init, settings, hook wiring (top)
 * action.c			what every action on a session shares: the session
 *					argument and the node it leads to, the privilege, the
 *					aim, the mark, the log line, the DETAIL the session is
 *					told
 * forward.c		the sessions of other nodes: the directory of nodes,
 *					the calls forwarded to them, the lists of every node
 * node_drive.c		the calls to other nodes driven all at once: the wait
 *					loop
 * node_call.c/h	one call's steps: start, connect, the node's identity,
 *					send
 * node_option.c/h	whom a call may trust and where each connection option
 *					comes from
 * node_answer.c/h	what comes back from a call: answer, failure, notices
 * connection.c		the connections to other nodes kept between calls
 *					(with the node_ files, the only users of libpq)
 * resolve.c/h		host names resolved by a child process, bounded and
 *					cancellable (leaf)
 * checker.c		the background worker that ends sessions at their drain
 *					deadline, and idle blockers
 * policy.c			idle blockers: the setting, the checker's pass, and
 *					the end of an idle session that it decides itself
 * blockers.c		kill_blockers(): the heads of the chains that hold a
 *					waiting session, ended
 * kill.c			kill_session() and kill_sessions(): the kill of
 *					sessions and the wait
 * disconnect.c		disconnect_session(): the end of a session after its
 *					transaction
 * cancel.c			cancel_sql(): the cancel of a session's statement, or
 *					of the statement named by its SQL_ID
 * cancel_handler.c	the session's side of a cancel by SQL_ID: its SIGINT
 *					handler, and the DETAIL of a cancel it took
 * vsession.c		v$session: the sessions as Oracle shows them, with
 *					the lock graph in session IDs
 * record.c		every action on record: the reason, and the history row
 *					an action writes and completes
 * record_view.c	the record as views: the history of this node and of
 *					every node, and the counters
 * history.c/h		the history's ring and counters in shared memory, and
 *					their file over a clean restart (leaf)
 * activity.c/h		what a backend is doing now, read in place from its
 *					status entry (leaf)
 * lockgraph.c/h	who waits for whom, read once from the lock table, and
 *					the head of every chain (leaf)
 * selfkill.c		ending a session from inside it: the caller's own right
 *					after the statement that killed it, a disconnected one
 *					right after its transaction's end reached its client
 * processlist.c	the process list: the view, the SHOW PROCESSLIST front
 *					door, and the list of every node
 * registry.c/h		client session IDs in shared memory (leaf)
 * registry_cancel.c	the registry's side of a cancel by SQL_ID: the ask,
 *					and the answer a SIGINT handler writes (leaf, with
 *					registry.c; both share registry_slot.h)
 * privilege.c/h	who may kill, and the Oracle GRANT ALTER SYSTEM form
 *					(leaf)
 * oracle_hint.c/h	the HINT for the Oracle statement (leaf)
 * sql_scan.c/h		the SQL scanner behind the HINT and the GRANT form:
 *					pure C, fuzzed (leaf)
 * session_id.c/h	the session string parser: pure C, fuzzed (leaf)
 * compat.h			the differences between PostgreSQL 15 and 18
 *
 * Includes form a tree: the entry file includes the features' header and
 * the leaves' headers; features include the leaves' headers; leaves
 * include nothing of the project but compat.h and the pure headers.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  kill_session.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KILL_SESSION_H
#define KILL_SESSION_H

#include "access/xact.h"
#include "fmgr.h"
#include "utils/backend_status.h"

#include "activity.h"
#include "compat.h"
#include "history.h"
#include "registry.h"
#include "resolve.h"
#include "session_id.h"

struct KsLockGraph;
struct ParseState;
struct PlannedStmt;
struct Query;
struct pg_result;

/* record.c: every action on record */
extern const char *ks_reason_arg(FunctionCallInfo fcinfo, int argno);
extern void ks_record_begin(KsHistAction action, uint32 sid,
							const KsSession *target, KsKiller *me);
extern void ks_record_begin_forwarded(KsHistAction action, int64 id, int node,
									  KsKiller *me);
extern void ks_record_end(KsKiller *me, KsHistAction action,
						  KsHistOutcome outcome, const char *detail);
extern void ks_record_error(KsKiller *me, KsHistAction action,
							bool signalled, bool forwarded,
							MemoryContext context);
extern void ks_record_hold_graph(void);
extern void ks_record_use_graph(const struct KsLockGraph *graph);
extern void ks_record_release_graph(void);

/* action.c: what every action on a session shares */
#define KS_KILL_WHAT	"kill session"
extern int64 ks_session_id_arg(FunctionCallInfo fcinfo, int argno,
							   bool *has_sql_id, int64 *sql_id);
extern bool ks_session_arg(FunctionCallInfo fcinfo, int argno,
						   const char *what, KsHistAction action,
						   const char *reason, uint32 *sid, bool *has_sql_id,
						   int64 *sql_id, Datum *result);
extern void ks_actor(const char *reason, KsKiller *me);
pg_noreturn extern void ks_report_invalid(void);
pg_noreturn extern void ks_report_missing(uint32 sid);
extern int	ks_id_home(int64 id);
extern char *ks_node_of_session(Oid fn, int64 id);
extern void ks_check_privilege(const char *what);
extern bool ks_aim(uint32 sid, const char *what, bool missing_ok,
				   const char *reason, KsSession *target, KsKiller *me);
extern void ks_mark(uint32 sid, const KsSession *target, KsAction action,
					const KsKiller *me, int signo, int *pidfd,
					KsProcState *before);
extern void ks_log_action(uint32 sid, const KsSession *target,
						  const char *done, const KsKiller *me);
extern void ks_add_end_detail(ErrorData *edata);
extern void ks_define_action_settings(void);
extern int	ks_wait_timeout_ms(void);
extern char *ks_describe_marker(const KsKiller *by);
extern char *ks_cancel_detail(uint32 sid, const KsKiller *by);
extern char *ks_quote_name(const char *name);
extern char *ks_valid_text(const char *p);

/* Where a call stands (private to the forwarding files). */
typedef enum KsCallState
{
	KS_CALL_NEW,
	KS_CALL_KEPT,				/* has a kept connection, not yet checked */
	KS_CALL_RESOLVING,			/* its host names being resolved */
	KS_CALL_CONNECTING,
	KS_CALL_CHECKING,			/* asked who the node is */
	KS_CALL_GUARDING,			/* pipelined: the node checks itself */
	KS_CALL_RUNNING,			/* its SQL runs there */
	KS_CALL_SYNCING,			/* pipelined: answered, the pipeline to end */
	KS_CALL_DONE				/* answered or failed */
} KsCallState;

/*
 * A call of SQL on another node.  The caller fills the first part; the
 * forwarding files (forward.c, node_*.c) the rest.
 */
typedef struct KsNodeCall
{
	int			node;			/* the node to call */
	char	   *server;			/* its foreign server */
	Oid			fn;				/* the extension's function that calls */
	Oid			object;			/* the extension's function or view that sql
								 * runs there */
	const char *sql;			/* what to run there, with $1.. */
	int			nparams;
	const char *const *params;	/* $1.. as text, NULL for NULL */
	const char *action;			/* what it does to sessions there, for the LOG
								 * line; NULL for a read */
	int			wait_ms;		/* the caller's kill_session.wait_timeout,
								 * passed on */

	/* the answer: rows of text (ks_call_value), or why there is none */
	bool		failed;
	int			nrows;
	int			ncols;
	struct pg_result *result;
	int			sqlerrcode;
	char	   *message;
	char	   *detail;
	char	   *hint;

	/* private to the forwarding files */
	struct pg_conn *conn;
	KsCallState state;
	int			poll;
	bool		flushing;
	bool		password_required;
	TimestampTz deadline;
	MemoryContext context;
	const char **keywords;		/* the connection's options */
	const char **options;
	KsResolver	resolver;		/* host names being resolved */
	Oid			serverid;		/* the server, role and user mapping whose */
	Oid			userid;			/* connection it is, kept or opened */
	Oid			umid;
	char	   *origin;			/* kill_session.origin, given when it connects */
	struct KsNotice *notices;	/* the node's notices, not yet raised */
	struct KsNotice *last_notice;
	bool		kept;			/* a kept connection, not yet used again */
	bool		pipelined;		/* checks and call sent in one pipeline */
	bool		sent;			/* the call's SQL may have reached the node */
} KsNodeCall;

/* forward.c: the directory, forwarded calls and cluster lists */
extern char *ks_extension_object(Oid fn, const char *name);
extern char *ks_node_server(Oid fn, int node);

struct ReturnSetInfo;

/* Whether a row of node's list may be shown; it may hide columns. */
typedef bool (*KsNodeRowCheck) (int node, const char **row, bool read_all_stats);
extern void ks_cluster_list(FunctionCallInfo fcinfo, const char *view,
							const char *columns, int ncols,
							void (*list_local) (struct ReturnSetInfo *rsinfo,
												bool with_node),
							KsNodeRowCheck row_ok, int wait_ms);
extern Datum ks_forward_call(FunctionCallInfo fcinfo, int argno, int64 id,
							 const char *session, const char *server,
							 const char *what, int wait_ms);
extern void ks_forward_rows(FunctionCallInfo fcinfo, int argno, int64 id,
							const char *session, const char *server,
							const char *what, int wait_ms, KsNodeCall *call);

/* node_drive.c: the calls to other nodes, all at once */
extern void ks_nodes_send(KsNodeCall *calls, int n);
extern void ks_nodes_receive(KsNodeCall *calls, int n);
extern void ks_nodes_close(KsNodeCall *calls, int n);

/* node_answer.c: what comes back from a call */
extern const char *ks_call_value(const KsNodeCall *call, int row, int col);
extern void ks_node_report(const KsNodeCall *call, int elevel);

/* connection.c: the connections to other nodes kept between calls */
extern void ks_define_connection_settings(void);
extern struct pg_conn *ks_connection_take(Oid serverid, Oid userid, Oid umid,
										  const char *origin);
extern void ks_connection_give_back(Oid serverid, Oid userid, Oid umid,
									const char *origin, struct pg_conn *conn,
									bool clean);
extern void ks_connection_close(struct pg_conn *conn);
extern void ks_ignore_notice(void *arg, const struct pg_result *res);

/* checker.c: the background worker that ends sessions at their deadline */
extern void ks_register_checker(void);
extern void ks_define_checker_settings(void);

/* policy.c: idle blockers, and their end as the session decides */
typedef enum KsIdleEnd
{
	KS_IDLE_END_DONE,			/* it took the end: it is ending */
	KS_IDLE_END_LEFT,			/* it was no longer in that idle period */
	KS_IDLE_END_GONE,			/* it had ended */
	KS_IDLE_END_BUSY,			/* another ask of it was unanswered */
	KS_IDLE_END_NOT_OURS,		/* its SIGINT handler is another library's */
	KS_IDLE_END_FAILED,			/* the signal could not be sent */
	KS_IDLE_END_NO_ANSWER		/* it did not answer in time */
} KsIdleEnd;

extern void ks_define_policy_settings(void);
extern void ks_policy_publish(void);
extern bool ks_idle_period_of(const KsSession *s, KsIdlePeriod *period);
extern const char *ks_idle_words(const KsIdlePeriod *period);
extern KsIdleEnd ks_end_idle(const KsSession *s, const KsIdlePeriod *period,
							 KsKiller *by, const char *detail, int exit_ms);
extern TimestampTz ks_policy_pass(TimestampTz now);

/* kill.c: the one kill behind every front door, and the wait */
extern bool ks_kill_session(uint32 sid, KsHistAction action,
							const char *reason);
extern bool ks_kill_if_there(uint32 sid, KsHistAction action,
							 const char *reason, bool missing_ok, bool *there);

/* cancel.c: the cancel of a statement, for another action */
extern bool ks_cancel_if_there(uint32 sid, const char *reason, bool *there);
extern bool ks_wait_gone(pid_t pid, int pidfd, int timeout_ms);

/* selfkill.c: ending a session from inside it */
typedef enum KsEndReason
{
	KS_ENDED_NOT,				/* not by us: PostgreSQL's message stands */
	KS_ENDED_BY_SELF_KILL,		/* after the statement that killed it */
	KS_ENDED_AFTER_XACT,		/* disconnected after its transaction */
	KS_ENDED_IDLE				/* disconnected with no transaction open */
} KsEndReason;

extern void ks_end_after_statement(void);
extern void ks_end_after_transaction(void);
extern void ks_end_now(KsEndReason reason);
extern KsEndReason ks_end_reason(void);

/* cancel_handler.c: the session's side of a cancel by SQL_ID */
extern void ks_install_cancel_handler(void);
extern void ks_check_cancel_handler(void);
extern bool ks_add_cancel_detail(ErrorData *edata);
extern bool ks_add_idle_end_report(ErrorData *edata);

/* disconnect.c: the target's side of a disconnect */
extern void ks_disconnect_xact_callback(XactEvent event, void *arg);
extern void ks_disconnect_leaving_block(void);

/* processlist.c: the SHOW PROCESSLIST front door */
extern void ks_rewrite_show(struct Query *query);
extern void ks_analyze_show_text(struct ParseState *pstate, struct Query *query);
extern void ks_show_before_execute(struct PlannedStmt *pstmt,
								   const char *queryString);
extern bool ks_show_may_discard(Node *stmt);
extern void ks_show_after_discard(void);

#endif							/* KILL_SESSION_H */
