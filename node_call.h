/*-------------------------------------------------------------------------
 *
 * node_call.h
 *		A call to another node, step by step (node_call.c): for the
 *		forwarding files and the entry file's settings.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  node_call.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_NODE_CALL_H
#define KS_NODE_CALL_H

#include "kill_session.h"

extern void ks_define_call_settings(void);
extern int	ks_node_timeout_ms(void);
extern int64 ks_answer_timeout(const KsNodeCall *call);
extern void ks_call_start(KsNodeCall *call);
extern void ks_call_connect(KsNodeCall *call);
extern void ks_call_connected(KsNodeCall *call);
extern void ks_call_send(KsNodeCall *call, const char *sql, int nparams,
						 const char *const *params, KsCallState next);
extern void ks_call_checked(KsNodeCall *call, const struct pg_result *res);

#endif							/* KS_NODE_CALL_H */
