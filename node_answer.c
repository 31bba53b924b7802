/*-------------------------------------------------------------------------
 *
 * node_answer.c
 *		What comes back from a call to another node: its answer, its
 *		failure, and the node's notices.
 *
 * A call that fails keeps why (a SQLSTATE, a message, a DETAIL and a HINT)
 * and closes its connection; the caller raises it when it chooses, with a
 * CONTEXT naming the node.  An error the node sent keeps its SQLSTATE where
 * it means the same here.  A node's NOTICEs and WARNINGs are kept as libpq
 * hands them over, and raised, in order, once libpq has returned.  An
 * answer is kept as libpq made it until the caller's memory context goes.
 *
 * This file owns only the call's outcome.  It must not start, connect,
 * send or wait (node_call.c, node_drive.c), nor decide what a call may do:
 * it is the lowest of the forwarding files and calls none of them.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  node_answer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "kill_session.h"
#include "node_answer.h"

/* The call failed: keep why, and close its connection. */
void
ks_call_fail(KsNodeCall *call, int sqlerrcode, char *message, char *detail,
			 char *hint)
{
	ks_resolve_stop(&call->resolver);
	ks_connection_close(call->conn);
	call->conn = NULL;
	call->failed = true;
	call->sqlerrcode = sqlerrcode;
	call->message = message;
	call->detail = detail;
	call->hint = hint;
	call->state = KS_CALL_DONE;
}

/*
 * The connection to the call's node is lost (why: detail).  Before the
 * call's SQL was sent nothing ran there: 08006.  After, an action may have
 * been done there, or not: 08007, the outcome is unknown, never a false.
 * A read (no action) is 08006 either way.
 */
void
ks_call_lost(KsNodeCall *call, char *detail)
{
	if (call->sent && call->action != NULL)
		ks_call_fail(call, ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN,
					 psprintf("the outcome on node %d is unknown", call->node),
					 psprintf("The connection to node %d was lost after the call was sent: %s",
							  call->node, detail),
					 psprintf("cluster_processlist shows whether the session is still there; node %d's log says what was done.",
							  call->node));
	else
		ks_call_fail(call, ERRCODE_CONNECTION_FAILURE,
					 psprintf("lost the connection to node %d", call->node),
					 detail, NULL);
}

static char *
ks_result_field(const PGresult *res, int field)
{
	const char *value = PQresultErrorField(res, field);

	return value != NULL ? pstrdup(value) : NULL;
}

static int
ks_result_sqlstate(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (state == NULL || strlen(state) != 5)
		return ERRCODE_CONNECTION_FAILURE;
	return MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
}

/*
 * The node reported an error: keep it as it sent it.  But a FATAL, or an
 * operator intervention of class 57P0 (the node shutting down, the
 * forwarding session ended), ended the node's session, not the caller's:
 * here it is 08006, with the node's own words in the DETAIL, since drivers
 * and poolers take 57P0x as the end of their own connection.
 */
void
ks_call_fail_result(KsNodeCall *call, const PGresult *res)
{
	char	   *message = ks_result_field(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (message == NULL)
		message = pchomp(PQerrorMessage(call->conn));
	if ((severity != NULL &&
		 (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0)) ||
		(state != NULL && strncmp(state, "57P0", 4) == 0))
	{
		ks_call_lost(call, psprintf("the node said: %s: %s%s%s",
									severity ? severity : "ERROR",
									state ? state : "", state ? ": " : "",
									message));
		return;
	}
	ks_call_fail(call, ks_result_sqlstate(res), message,
				 ks_result_field(res, PG_DIAG_MESSAGE_DETAIL),
				 ks_result_field(res, PG_DIAG_MESSAGE_HINT));
}

/* A node's NOTICE or WARNING, kept until libpq has returned. */
typedef struct KsNotice
{
	struct KsNotice *next;
	int			elevel;
	int			sqlerrcode;
	char	   *message;
	char	   *detail;
	char	   *hint;
} KsNotice;

/* A copy in the call's memory, or NULL if there is no memory for it. */
static char *
ks_notice_strdup(KsNodeCall *call, const char *s)
{
	char	   *copy;

	if (s == NULL)
		return NULL;
	copy = MemoryContextAllocExtended(call->context, strlen(s) + 1,
									  MCXT_ALLOC_NO_OOM);
	if (copy != NULL)
		strcpy(copy, s);
	return copy;
}

/*
 * libpq's notice receiver: keep a node's NOTICE or WARNING in the call, in
 * the order it came, for ks_call_raise_notices().  It runs inside libpq
 * (PQconsumeInput, PQgetResult, PQconnectPoll), which an ereport() here
 * could leave by longjmp in the middle of its work; so nothing here can
 * raise an error, not even for memory: a notice that finds none is lost.
 */
void
ks_notice_receiver(void *arg, const PGresult *res)
{
	KsNodeCall *call = arg;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	KsNotice   *notice;
	int			elevel;

	if (severity == NULL || message == NULL)
		return;
	if (strcmp(severity, "WARNING") == 0)
		elevel = WARNING;
	else if (strcmp(severity, "NOTICE") == 0)
		elevel = NOTICE;
	else if (strcmp(severity, "INFO") == 0)
		elevel = INFO;
	else
		return;
	notice = MemoryContextAllocExtended(call->context, sizeof(KsNotice),
										MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
	if (notice == NULL)
		return;
	notice->elevel = elevel;
	notice->sqlerrcode = ks_result_sqlstate(res);
	notice->message = ks_notice_strdup(call, message);
	notice->detail = ks_notice_strdup(call,
									  PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
	notice->hint = ks_notice_strdup(call,
									PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
	if (notice->message == NULL)
		return;
	if (call->last_notice != NULL)
		call->last_notice->next = notice;
	else
		call->notices = notice;
	call->last_notice = notice;
}

/* Raise what a node said at elevel, as it said it, naming the node. */
static void
ks_raise_for_node(const KsNodeCall *call, int elevel, int sqlerrcode,
				  const char *message, const char *detail, const char *hint)
{
	ereport(elevel,
			(errcode(sqlerrcode),
			 errmsg_internal("%s", message),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0,
			 errcontext("node %d (foreign server \"%s\")",
						call->node, call->server)));
}

/* Raise the call's kept notices, in order, with the node named. */
void
ks_call_raise_notices(KsNodeCall *call)
{
	while (call->notices != NULL)
	{
		KsNotice   *notice = call->notices;

		call->notices = notice->next;
		if (call->notices == NULL)
			call->last_notice = NULL;
		ks_raise_for_node(call, notice->elevel, notice->sqlerrcode,
						  notice->message, notice->detail, notice->hint);
	}
}

/*
 * Connecting failed.  If the node refused with an error of its own (too
 * many connections, a database being shut down...), that is the SQLSTATE
 * here too, found in libpq's message as PQERRORS_VERBOSE writes it,
 * "SEVERITY:  SQLSTATE: text"; otherwise 08001.  The DETAIL is libpq's
 * message without its LOCATION lines.
 */
void
ks_call_connect_failed(KsNodeCall *call)
{
	const char *message = PQerrorMessage(call->conn);
	const char *p;
	int			sqlstate = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
	StringInfoData detail;

	for (p = strstr(message, ":  "); p != NULL; p = strstr(p + 1, ":  "))
	{
		const char *s = p + 3;
		int			i;

		for (i = 0; i < 5 && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')); i++)
			;
		if (i == 5 && s[5] == ':')
		{
			sqlstate = MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
			break;
		}
	}
	initStringInfo(&detail);
	for (p = message; *p != '\0';)
	{
		const char *eol = strchr(p, '\n');
		int			len = eol ? (int) (eol - p) : (int) strlen(p);

		if (strncmp(p, "LOCATION:", 9) != 0)
			appendStringInfo(&detail, "%s%.*s", detail.len > 0 ? "\n" : "", len, p);
		p += len + (eol ? 1 : 0);
	}
	ks_call_fail(call, sqlstate,
				 psprintf("could not connect to node %d", call->node),
				 detail.data, NULL);
}

/* Free an answer kept until the end of its memory context. */
static void
ks_free_result(void *arg)
{
	PQclear((PGresult *) arg);
}

/*
 * The node's answer to the call's SQL: kept as libpq made it, until the
 * caller's memory context goes, however that ends.
 */
void
ks_call_answered(KsNodeCall *call, PGresult *res)
{
	MemoryContextCallback *cb;

	cb = MemoryContextAlloc(call->context, sizeof(MemoryContextCallback));
	cb->func = ks_free_result;
	cb->arg = res;
	MemoryContextRegisterResetCallback(call->context, cb);
	call->result = res;
	call->nrows = PQntuples(res);
	call->ncols = PQnfields(res);
}

/* The answer's value at row, col, as text; NULL for NULL. */
const char *
ks_call_value(const KsNodeCall *call, int row, int col)
{
	if (PQgetisnull(call->result, row, col))
		return NULL;
	return PQgetvalue(call->result, row, col);
}

/* Raise a failed call's error at elevel, naming its node. */
void
ks_node_report(const KsNodeCall *call, int elevel)
{
	ks_raise_for_node(call, elevel, call->sqlerrcode, call->message,
					  call->detail, call->hint);
}
