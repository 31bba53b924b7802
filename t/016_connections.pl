# The connections to other nodes that a session keeps between calls, on
# the streaming cluster of t/013: the second call to a node reuses the
# first one's connection; a connection serves only the role that opened
# it; a change of the server or the user mapping drops it, and one of the
# directory is seen by the next call;
# kill_session.keep_connections = off and kill_session_disconnect_all()
# close them; a node restarted between two calls costs nothing but a new
# connection; and no call leaves its settings to the next.

use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use KsNode;
use KsWire;

my @nodes = ks_cluster();
my ($n1, $n2, $n3) = @nodes;
my $END = [ 'E:FATAL:57P01', 'EOF' ];

$n1->safe_psql('postgres',
	'GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO dba');
$n1->wait_for_catchup($_, 'replay', $n1->lsn('insert')) for $n2, $n3;

# The backends of node 3 that serve calls from other nodes.
sub forwarding_pids
{
	return $n3->safe_psql('postgres', q{
		SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
		WHERE application_name = 'kill_session'});
}

# Kill a new session of node 3 from $caller; true if it ended.
sub kill_one
{
	my ($caller) = @_;
	my ($v, $id) = ks_victim($n3);
	my $r = $caller->value("SELECT kill_session('$id')");
	my $ended = $r eq 't' && join(' ', @{ $v->trace(10) }) eq join(' ', @$END);
	return $ended;
}

my $caller = KsWire->connect($n1);
my ($v, $id, $r);
ok(kill_one($caller), 'a first call to node 3 kills');
my $first = forwarding_pids();
like($first, qr/^\d+$/, 'its connection is kept: one forwarding backend on node 3');
is($caller->value(q{SELECT string_agg(server_name || '/' || user_name || '/' || valid, ' ')
		FROM kill_session_connections()}),
	'node3/postgres/true', 'kill_session_connections() lists it');
ok(kill_one($caller), 'a second call kills');
is(forwarding_pids(), $first, 'on the same connection: the same backend of node 3');

# Nothing of one call's settings is left for the next: each call passes
# its own wait_timeout, and with none set it is the default there.
$caller->query(q{SET kill_session.wait_timeout = '1234ms'});
ok(kill_one($caller), 'a call with its own wait_timeout');
$caller->query(q{RESET kill_session.wait_timeout});
my $pid = forwarding_pids();
is($n3->safe_psql('postgres', qq{
	SELECT setting FROM pg_settings WHERE name = 'kill_session.wait_timeout'}),
	'5000', '(the default on node 3)');
ok(kill_one($caller), 'the next call, with the default');

# A connection serves only the role that opened it.
$caller->query('SET ROLE dba');
ok(kill_one($caller), 'after SET ROLE dba, a call kills');
like(forwarding_pids(), qr/^\d+,\d+$/, 'on a connection of its own');
is($caller->value(q{SELECT string_agg(user_name, ' ' ORDER BY user_name)
		FROM kill_session_connections()}),
	'dba postgres', 'one kept for each role');
$caller->query('RESET ROLE');
ok(kill_one($caller), 'back as postgres');
is($caller->value('SELECT count(*) FROM kill_session_connections()'), '2',
	'on its own kept connection');

# A change of the server or the user mapping drops the kept connection.
$n1->safe_psql('postgres', q{ALTER SERVER node3 OPTIONS (ADD connect_timeout '10')});
is($caller->value(q{SELECT string_agg(valid::text, ' ') FROM kill_session_connections()}),
	'false false', 'ALTER SERVER: both connections to it are marked invalid');
my $before = forwarding_pids();
ok(kill_one($caller), 'the next call kills');
my %was = map { $_ => 1 } split /,/, $before;
ok((grep { !$was{$_} } split /,/, forwarding_pids()),
	'on a new connection: a backend of node 3 that was not there before');
$n1->safe_psql('postgres', q{ALTER USER MAPPING FOR postgres SERVER node3
	OPTIONS (ADD user 'postgres')});
is($caller->value(q{SELECT valid FROM kill_session_connections()
		WHERE user_name = 'postgres'}),
	'f', 'ALTER USER MAPPING: its connection is marked invalid');
ok(kill_one($caller), 'and the next call opens another');

# The directory is read, and the node's identity checked, on every call:
# a kept connection never serves another node than the directory names.
ok(kill_one($caller), 'a call kills, and keeps its connection');
($v, $id) = ks_victim($n3);
$r = $caller->query(qq{
	BEGIN;
	UPDATE kill_session_nodes SET server_name = 'node2' WHERE node_id = 3;
	SELECT kill_session('$id');});
is($r->{error}{C} . ' ' . $r->{error}{M},
	'55000 foreign server "node2" is not node 3 of this cluster',
	'the directory changed: 55000, though connections are kept');
$caller->query('ROLLBACK');
is($v->value('SELECT 1'), '1', 'the session lives on');

# keep_connections off, and kill_session_disconnect_all().
ok(kill_one($caller), 'a call kills');
is($caller->value('SELECT kill_session_disconnect_all()'), 't',
	'kill_session_disconnect_all() closes what is kept: true');
is($caller->value('SELECT kill_session_disconnect_all()'), 'f',
	'and then there is nothing: false');
$n3->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'kill_session'})
  or die;
$caller->query('SET kill_session.keep_connections = off');
ok(kill_one($caller), 'with keep_connections off, a call kills');
is($caller->value('SELECT count(*) FROM kill_session_connections()'), '0',
	'and keeps nothing');
ok( $n3->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'kill_session'}),
	'its connection is closed on node 3');
$caller->query('RESET kill_session.keep_connections');

# A node restarted between two calls: the second call succeeds on a new
# connection, transparently.
ok(kill_one($caller), 'a call kills, and keeps its connection');
$n3->restart;
ok(kill_one($caller), 'node 3 restarted: the next call kills, on a new connection');
is($caller->value('SELECT count(*) FROM kill_session_connections() WHERE valid'), '1',
	'which is kept');

# A node that refuses the connection with an error of its own: its
# SQLSTATE comes back, naming the node.  (Here the mapped role is at its
# connection limit there.)
$n1->safe_psql('postgres', 'CREATE ROLE lim LOGIN CONNECTION LIMIT 1');
$n1->wait_for_catchup($n3, 'replay', $n1->lsn('insert'));
my $lim = KsWire->connect($n3, user => 'lim');
($v, $id) = ks_victim($n3);
$r = $caller->query(qq{
	BEGIN;
	ALTER USER MAPPING FOR postgres SERVER node3 OPTIONS (SET user 'lim');
	SELECT kill_session('$id');});
is("$r->{error}{C} $r->{error}{M}", '53300 could not connect to node 3',
	'a node at the role\'s connection limit: 53300, naming the node');
like($r->{error}{D}, qr/too many connections for role "lim"/, 'with its words');
unlike($r->{error}{D}, qr/LOCATION/, 'and no more');
$caller->query('ROLLBACK');
$lim->close;
is($v->value('SELECT 1'), '1', 'the session lives on');

# A call that fails on the node (its error) does not keep a connection in
# an unknown state; the next call works.
like($caller->query(q{SELECT kill_session('30000000001')})->{error}{C},
	qr/^42704$/, 'a session that is not there: 42704 from node 3');
ok(kill_one($caller), 'the next call kills');

# The cluster list and kill_sessions reuse the kept connections too.
my $pids = forwarding_pids();
is($caller->value('SELECT count(DISTINCT node) FROM cluster_processlist'), '3',
	'the cluster list reads every node');
($v, $id) = ks_victim($n3);
is($caller->value("SELECT killed FROM kill_sessions(ARRAY[$id])"), 't',
	'kill_sessions kills');
is(forwarding_pids(), $pids, 'both on the connection kept for node 3');

$caller->close;
done_testing();
