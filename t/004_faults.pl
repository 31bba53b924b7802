# Faults: two killers on one target, a target already exiting, the killer
# itself killed or cancelled while it waits, and the ID counter wrapping
# past 4294967295.  (A target SIGKILLed, with crash recovery, is in
# 001_registry.pl.)

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# max_connections in the thousands: the registry has a slot per PGPROC.
my $node = ks_node('main', "max_connections = 2000\n");
$node->safe_psql('postgres', q{
	CREATE FUNCTION ks_set_next_id(bigint) RETURNS void
	AS 'kill_session', 'kill_session_set_next_id' LANGUAGE C STRICT;
});
my $start_time = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

sub outcome
{
	my ($r) = @_;
	return $r->{error} ? $r->{error}{C} : $r->{rows}[0][0];
}

sub registry_consistent
{
	return $node->poll_query_until('postgres', ks_registry_query());
}

# Two killers on one target at once: one kill; the other succeeds too or
# finds no such session, and nothing else happens.
my %seen;
my $killer1 = KsWire->connect($node);
my $killer2 = KsWire->connect($node);
for (1 .. 30)
{
	my $t = KsWire->connect($node);
	my $id = $t->session_id;
	$killer1->send_query("SELECT kill_session('$id')");
	$killer2->send_query("SELECT kill_session('$id')");
	my @o = sort (outcome($killer1->read_result(30)), outcome($killer2->read_result(30)));
	$seen{"@o"}++;
	$t->close;
}
my @bad = grep { !/^(t t|42704 t)$/ } keys %seen;
is_deeply(\@bad, [], 'two killers: each gets success or "does not exist" '
	  . join(', ', map { "$_ x$seen{$_}" } sort keys %seen));

# A target already exiting: it closes its connection as the kill arrives.
%seen = ();
for (1 .. 30)
{
	my $t = KsWire->connect($node);
	my $id = $t->session_id;
	$killer1->send_query("SELECT kill_session('$id')");
	$t->close;
	$seen{ outcome($killer1->read_result(30)) }++;
}
@bad = grep { !/^(t|42704)$/ } keys %seen;
is_deeply(\@bad, [], 'a target already exiting: success or "does not exist" '
	  . join(', ', map { "$_ x$seen{$_}" } sort keys %seen));

# The killer killed while it waits for a stopped target.
my $target = KsWire->connect($node);
my $target_id = $target->session_id;
kill 'STOP', $target->pid;
my $waiter = KsWire->connect($node);
my $waiter_id = $waiter->session_id;
my $waiter_pid = $waiter->pid;
$waiter->query('SET kill_session.wait_timeout = 60000');
$waiter->send_query("SELECT kill_session('$target_id')");
$node->poll_query_until('postgres',
	"SELECT wait_event = 'BackendTermination' FROM pg_stat_activity WHERE pid = $waiter_pid");
is($killer1->value("SELECT kill_session('$waiter_id')"), 't',
	'the waiting killer can itself be killed');
is($waiter->read_result(10)->{error}{C}, '57P01', 'it ends with 57P01');
kill 'CONT', $target->pid;
is($target->read_result(10)->{error}{C}, '57P01',
	'its target still ends once it can');

# ... and cancelled while it waits.
$target = KsWire->connect($node);
$target_id = $target->session_id;
kill 'STOP', $target->pid;
$waiter = KsWire->connect($node);
$waiter_pid = $waiter->pid;
$waiter->query('SET kill_session.wait_timeout = 60000');
$waiter->send_query("SELECT kill_session('$target_id')");
$node->poll_query_until('postgres',
	"SELECT wait_event = 'BackendTermination' FROM pg_stat_activity WHERE pid = $waiter_pid");
$node->safe_psql('postgres', "SELECT pg_cancel_backend($waiter_pid)");
is($waiter->read_result(10)->{error}{C}, '57014', 'the waiting killer can be cancelled');
is($waiter->value('SELECT 1'), '1', 'and goes on working');
kill 'CONT', $target->pid;
is($target->read_result(10)->{error}{C}, '57P01', 'its target still ends');
$waiter->close;
$killer1->close;
$killer2->close;
ok(registry_consistent(), 'registry matches pg_stat_activity after the faults');

# The ID counter wrapping past 4294967295, skipping IDs still in use.
$node->safe_psql('postgres', 'SELECT ks_set_next_id(1)');
my $one = KsWire->connect($node);
is($one->session_id, '1', 'the counter can hand out 1');
$node->safe_psql('postgres', 'SELECT ks_set_next_id(4294967294)');
my @wrap = map { KsWire->connect($node) } 1 .. 3;
is_deeply([ map { $_->session_id } @wrap ], [ '4294967294', '4294967295', '2' ],
	'after 4294967295 it wraps, skipping 0 and the live ID 1');
is($one->value(q{SELECT count(DISTINCT id) = count(*) FROM processlist}), 't',
	'no ID is held twice');
is($one->value(q{SELECT kill_session('4294967295')}), 't',
	'an ID at the top of the range can be killed');
$_->close for (@wrap, $one);
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT ks_set_next_id(0)');
like($err, qr/session ID 0 is out of range/, 'the counter cannot be set to 0');
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
($ret, $out, $err) = $node->psql('postgres', 'SELECT ks_set_next_id(5)',
	extra_params => [ '-U', 'plain' ]);
like($err, qr/permission denied|must be superuser/, 'only a superuser may set it');

# Many sessions at once, with max_connections in the thousands.
my @many = map { KsWire->connect($node) } 1 .. 300;
my %ids = map { $_->session_id => 1 } @many;
is(scalar(keys %ids), 300, '300 concurrent sessions hold 300 distinct IDs');
is($many[0]->value('SELECT count(*) FROM processlist'), '300',
	'and are all listed');
my $last = $many[-1]->session_id;
is($many[0]->value("SELECT kill_session('$last')"), 't', 'the newest is killed');
$_->close for @many;
ok(registry_consistent(), 'registry matches pg_stat_activity after they leave');

# A killer cancelled at any point of the call leaves no descriptor open.
# The target is stopped, so every call signals it, logs and waits.  Two
# ways to cancel: a cancel the killer sends itself just before the call,
# which the first interrupt check in the call serves (the LOG line), and
# statement_timeout at random points of the call, the wait included.
{
	my $stopped = KsWire->connect($node);
	my $sid = $stopped->session_id;
	my $spid = $stopped->pid;
	kill 'STOP', $spid;
	my $killer = KsWire->connect($node);
	my $kpid = $killer->pid;
	my $fds = sub {
		opendir(my $d, "/proc/$kpid/fd") or die "cannot read /proc/$kpid/fd: $!";
		return scalar grep { !/^\./ } readdir $d;
	};
	my @calls = (
		"SELECT pg_cancel_backend(pg_backend_pid()), kill_session('$sid')",
		"SET statement_timeout = '2ms'; SELECT kill_session(s) FROM (SELECT '$sid' AS s, pg_sleep(0.0012 + random() * 0.0012)) x; RESET statement_timeout");
	# The first calls open the catalogs' files, which stay open.
	$killer->query($_) for (@calls, @calls);
	my $before = $fds->();
	my %outcome;
	for my $i (1 .. 1000)
	{
		my $r = $killer->query($calls[ $i % 2 ]);
		$outcome{ $r->{error} ? $r->{error}{C} : 'returned' }++;
	}
	my $after = $fds->();
	is($after, $before,
		"1000 cancelled kills leave no descriptor open ($before before, $after after)");
	is($outcome{'57014'} // 0, 1000, 'every call was cancelled');
	kill 'CONT', $spid;
	$killer->close;
}

is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$start_time, 'the server never restarted');
ok(!$node->log_contains(qr/PANIC|TRAP|terminated by signal/),
	'no PANIC, TRAP or crashed process in the log');

$node->stop;
done_testing();
