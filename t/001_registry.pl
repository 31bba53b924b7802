# Client session IDs and the process list across whole server lives:
# preloading, connection churn, crash recovery, visibility, protocols.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Without shared_preload_libraries: CREATE EXTENSION works, every entry
# point says what is missing.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION kill_session');
for my $sql ("SELECT kill_session('1')", 'SELECT * FROM processlist')
{
	my ($ret, $out, $err) = $plain->psql('postgres', $sql,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err,
		qr/ERROR:  55000: kill_session must be loaded via shared_preload_libraries/,
		"not preloaded: $sql raises 55000 naming the setting");
}
$plain->stop;

my $node = ks_node('main', qq{
listen_addresses = '127.0.0.1'
max_connections = 40
restart_after_crash = on
});
$node->append_conf('pg_hba.conf', 'host all all 127.0.0.1/32 trust');
$node->reload;

sub registry_matches_activity
{
	return $node->safe_psql('postgres', ks_registry_query());
}

# 1,000 connect/disconnect cycles (KS_CONNECT_CYCLES): as many distinct IDs,
# no slot left over.
my $cycles = $ENV{KS_CONNECT_CYCLES} // 1000;
my %seen;
my $bad = 0;
for (1 .. $cycles)
{
	my $c = KsWire->connect($node);
	my $id = $c->session_id;
	$bad++ unless defined $id && $id =~ /^\d+$/ && $id >= 1 && $id <= 4294967295;
	$seen{$id}++;
	$c->close;
}
is($bad, 0, 'every session has an ID in 1..4294967295');
my ($first_id) = sort { $a <=> $b } keys %seen;
is(scalar(keys %seen), $cycles, "$cycles connections got $cycles distinct IDs");
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM processlist}),
	'no registry slot is left behind once they have gone');
is(registry_matches_activity(), 't', 'registry matches pg_stat_activity');

# Sessions that end with FATAL free their slot too.
for (1 .. 20)
{
	my ($ret, $out, $err) =
	  $node->psql('no_such_db', 'SELECT 1');
}
ok( $node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM processlist}),
	'failed connections leave no slot');

# Visibility, exactly as pg_stat_activity: alice's details are hidden from
# bob until he may read all statistics.
$node->safe_psql('postgres', 'CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN');
my $alice = KsWire->connect($node, user => 'alice', tcp => 1);
my $alice_pid = $alice->pid;
$alice->send_query('SELECT pg_sleep(120)');
$node->poll_query_until('postgres',
	"SELECT state = 'active' FROM pg_stat_activity WHERE pid = $alice_pid");
my $bob = KsWire->connect($node, user => 'bob');
my $view = "SELECT \"user\", coalesce(host, 'NULL'), coalesce(command, 'NULL'), "
  . "coalesce(state, 'NULL'), info FROM processlist WHERE pid = $alice_pid";
my $r = $bob->query($view);
is_deeply($r->{rows}[0],
	[ 'alice', 'NULL', 'NULL', 'NULL', '<insufficient privilege>' ],
	"another role's HOST, COMMAND, STATE and INFO are hidden");
my $su = KsWire->connect($node);
$r = $su->query($view);
is($r->{rows}[0][0], 'alice', 'superuser sees the user');
like($r->{rows}[0][1], qr/^127\.0\.0\.1:\d+$/, 'HOST is address:port');
is_deeply([ @{ $r->{rows}[0] }[ 2 .. 4 ] ],
	[ 'Query', 'ACTIVE', 'SELECT pg_sleep(120)' ],
	'superuser sees command, state and statement');
$node->safe_psql('postgres', 'GRANT pg_read_all_stats TO bob');
$r = $bob->query($view);
is_deeply([ @{ $r->{rows}[0] }[ 2 .. 4 ] ],
	[ 'Query', 'ACTIVE', 'SELECT pg_sleep(120)' ],
	'pg_read_all_stats sees them');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($alice_pid)");
$alice->read_result(60);
$alice->close;
$bob->close;

# A session that has authenticated but is not in pg_stat_activity yet.
my $slow = KsWire->connect($node, options => '-c post_auth_delay=3', nowait => 1);
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM processlist
		WHERE command = 'Connect' AND state = 'CONNECTING' AND info IS NULL}),
	'an authenticated session still starting shows as Connect');
$slow->wait_ready;
is($slow->value('SELECT command FROM processlist WHERE pid = pg_backend_pid()'),
	'Query', 'and as a normal session once started');
$slow->close;

# SHOW PROCESSLIST over the extended and prepared protocols.
# (\aset: other sessions may still be listed while they exit)
my $script = "SHOW PROCESSLIST \\aset p_\n\\set seen debug(:p_ID)\n";
for my $protocol ('simple', 'extended', 'prepared')
{
	$node->pgbench(
		"-n -c 1 -t 3 --protocol=$protocol",
		0,
		[qr/number of transactions actually processed: 3/],
		[qr/debug\(script=0,command=2\): int \d+/],
		"SHOW PROCESSLIST returns a row over the $protocol protocol",
		{ "show_processlist_$protocol" => $script });
}

# Crash recovery: a SIGKILLed backend takes the server through recovery,
# which starts the registry afresh and consistent.
my $victim = KsWire->connect($node);
my $victim_id = $victim->session_id;
my $old_ids = $su->value(q{SELECT string_agg(id::text, ',') FROM processlist});
kill 'KILL', $victim->pid;
$su->read_result(5);
$node->poll_query_until('postgres', 'SELECT true');
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM processlist}),
	'after crash recovery only the new session is listed');
is(registry_matches_activity(), 't', 'registry matches pg_stat_activity after recovery');
my $after = KsWire->connect($node);
my $new_id = $after->session_id;
# The old server life handed out IDs from $first_id up to $victim_id; the
# new one starts at a new random point (a clash is a 1 in 4 million chance).
ok(!grep({ $_ eq $new_id } split(/,/, $old_ids))
	  && !($new_id >= $first_id && $new_id <= $victim_id + 100),
	"IDs start afresh after recovery ($first_id..$victim_id, then $new_id)");
my $other = KsWire->connect($node);
my $other_id = $other->session_id;
is($after->value("SELECT kill_session('$other_id')"), 't', 'kills work after recovery');
is($other->read_result(10)->{error}{C} // $other->read_message(10)->{fields}{C},
	'57P01', 'the killed session got 57P01');
$after->close;
$node->stop;

done_testing();
