// What a node-postgres (pg) application sees when a pool's checked-out
// client is disconnected after its transaction: the FATAL comes in the
// same write as the COMMIT's ReadyForQuery, and node-postgres emits it as
// an 'error' event on the client while the application still holds it,
// before the code after `await client.query('COMMIT')` runs.  Used by
// t/011_disconnect.pl:
//   node disconnect_pg_pool.js HOST PORT listener|none
// With "listener" the client and the pool have 'error' listeners, as
// node-postgres's documentation asks: the commit returns, its row is
// there.  With "none" the process dies of the unhandled 'error' event.
'use strict';
const pg = require('pg');

const [host, port, mode] = process.argv.slice(2);

async function main() {
	const dba = new pg.Client({ host, port: Number(port), database: 'postgres', user: 'dba' });
	dba.on('error', () => {});
	await dba.connect();
	const pool = new pg.Pool({ host, port: Number(port), database: 'postgres', user: 'app', max: 1 });
	if (mode === 'listener')
		pool.on('error', (e) => console.log(`pool error event: ${e.code}`));
	const client = await pool.connect();
	if (mode === 'listener')
		client.on('error', (e) => console.log(`client error event: ${e.code}`));
	const sid = (await client.query('SELECT id FROM processlist WHERE pid = pg_backend_pid()')).rows[0].id;
	await client.query('BEGIN');
	await client.query('INSERT INTO t VALUES (3)');
	await dba.query('SELECT disconnect_session($1, post_transaction => true)', [String(sid)]);
	await client.query('COMMIT');
	console.log('after commit');
	client.release(true);
	console.log(`row: ${(await dba.query('SELECT count(*) FROM t WHERE a = 3')).rows[0].count}`);
	await pool.end();
	await dba.end();
}

main().catch((e) => {
	console.error(e);
	process.exit(1);
});
