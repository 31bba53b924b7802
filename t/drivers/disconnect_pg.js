// What node-postgres (pg) shows for disconnect_session(...,
// post_transaction => true): the commit (or autocommit statement)
// succeeds, its row is there, and the next statement fails.  Used by
// t/011_disconnect.pl:
//   node disconnect_pg.js HOST PORT
'use strict';
const { Client } = require('pg');

const [host, port] = process.argv.slice(2);

async function connect(user) {
	const c = new Client({ host, port: Number(port), database: 'postgres', user });
	// The server's FATAL after the commit arrives while the client is idle.
	c.on('error', () => {});
	await c.connect();
	return c;
}

async function outcome(f) {
	try {
		await f();
		return 'ok';
	} catch (e) {
		return `${e.constructor.name} ${e.code || '-'}`;
	}
}

async function main() {
	const dba = await connect('dba');
	const sessionId = async (c) =>
		(await c.query('SELECT id FROM processlist WHERE pid = pg_backend_pid()')).rows[0].id;
	const disconnect = (sid) =>
		dba.query('SELECT disconnect_session($1, post_transaction => true)', [String(sid)]);
	const rows = async (a) =>
		(await dba.query('SELECT count(*) FROM t WHERE a = $1', [a])).rows[0].count;

	// A transaction: BEGIN; INSERT; the disconnect; COMMIT.
	let app = await connect('app');
	let sid = await sessionId(app);
	await app.query('BEGIN');
	await app.query('INSERT INTO t VALUES (1)');
	await disconnect(sid);
	console.log('commit:', await outcome(() => app.query('COMMIT')));
	console.log('row:', await rows(1));
	console.log('next:', await outcome(() => app.query('SELECT 1')));

	// An autocommit statement running as the disconnect comes.
	app = await connect('app');
	sid = await sessionId(app);
	const marker = new Promise((resolve) => setTimeout(() => resolve(disconnect(sid)), 300));
	console.log('autocommit:', await outcome(() => app.query('INSERT INTO t SELECT 2 FROM pg_sleep(1)')));
	await marker;
	console.log('row:', await rows(2));
	console.log('next:', await outcome(() => app.query('SELECT 1')));
	await dba.end();
}

main().catch((e) => {
	console.error(e);
	process.exit(1);
});
