# Stress: pgbench clients writing in transactions while a killer ends random
# sessions every few tens of milliseconds.  Afterwards the server never
# restarted, no row committed by an untargeted writer is missing, the
# process list has exactly one row per client backend, and every failed
# kill failed only because its target had already gone.
#
# KS_STRESS_SECONDS sets the duration (default 20); KS_STRESS_SECONDS=300
# runs it for five minutes.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $seconds = $ENV{KS_STRESS_SECONDS} // 20;

my $node = ks_node('main', qq{
max_connections = 60
restart_after_crash = on
kill_session.wait_timeout = 5000
});
$node->safe_psql('postgres', 'CREATE TABLE ledger (writer text, step int)');
my $start_time = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

my $dir = PostgreSQL::Test::Utils::tempdir;
my $transaction = "BEGIN;\nINSERT INTO ledger VALUES ('%s', 1);\n"
  . "SELECT pg_sleep(0.002);\nINSERT INTO ledger VALUES ('%s', 2);\nCOMMIT;\n";
PostgreSQL::Test::Utils::append_to_file("$dir/protected.sql",
	sprintf($transaction, 'protected', 'protected'));
PostgreSQL::Test::Utils::append_to_file("$dir/victim.sql",
	sprintf($transaction, 'victim', 'victim'));

sub start_pgbench
{
	my ($name, $clients, $duration) = @_;
	my ($out, $err) = ('', '');
	local $ENV{PGAPPNAME} = $name;
	my $h = IPC::Run::start(
		[
			'pgbench', '-n', '-c', $clients, '-T', $duration,
			'-f', "$dir/$name.sql", '-h', $node->host,
			'-p', $node->port, 'postgres'
		],
		'>', \$out, '2>', \$err);
	return { h => $h, out => \$out, err => \$err };
}

sub processed
{
	my ($run) = @_;
	return ${ $run->{out} } =~ /number of transactions actually processed: (\d+)/
	  ? $1 : 0;
}

my $deadline = time() + $seconds;
my $protected = start_pgbench('protected', 4, $seconds);
my $victims = start_pgbench('victim', 8, $seconds);
my $victim_runs = 1;
my $victim_tx = 0;

my $killer = KsWire->connect($node);
my (%outcome, $kills);
while (time() < $deadline)
{
	# Keep victims coming: a pgbench whose clients were all killed ends.
	$victims->{h}->pump_nb;
	if (!$victims->{h}->pumpable)
	{
		$victims->{h}->finish;
		$victim_tx += processed($victims);
		my $left = int($deadline - time());
		last if $left < 1;
		$victims = start_pgbench('victim', 8, $left);
		$victim_runs++;
	}

	my $r = $killer->query(q{
		SELECT p.id FROM processlist p JOIN pg_stat_activity a USING (pid)
		WHERE a.application_name = 'victim'
		ORDER BY random() LIMIT 1});
	my $id = $r->{rows}[0][0];
	if (defined $id)
	{
		$r = $killer->query("SELECT kill_session('$id')");
		my $o = $r->{error} ? $r->{error}{C} : "returned $r->{rows}[0][0]";
		$outcome{$o}++;
		$kills++;
	}
	$killer->query('SHOW PROCESSLIST') if rand() < 0.2;
	usleep(10_000 + int(rand(30_000)));
}

$protected->{h}->finish;
$victims->{h}->finish;
$victim_tx += processed($victims);
my $protected_tx = processed($protected);
$killer->close;

my $rows = $node->safe_psql('postgres',
	"SELECT count(*) FROM ledger WHERE writer = 'protected'");
diag(sprintf(
		"stress %ds: %d kill calls (%s); protected writers committed %d transactions "
		  . "(%d rows found); victim writers committed %d transactions in %d pgbench runs",
		$seconds, $kills // 0,
		join(', ', map { "$_: $outcome{$_}" } sort keys %outcome),
		$protected_tx, $rows, $victim_tx, $victim_runs));

cmp_ok($kills // 0, '>', $seconds * 5, 'the killer ended many sessions');
my @bad = grep { $_ ne 'returned t' && $_ ne '42704' } keys %outcome;
is_deeply(\@bad, [], 'every kill succeeded or found its target already gone');
cmp_ok($protected_tx, '>', 0, 'the protected writers did work');
is($rows, 2 * $protected_tx, 'every row the protected writers committed is there');
unlike(${ $protected->{err} }, qr/aborted/, 'no protected client was aborted');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$start_time, 'the postmaster never restarted');
ok( $node->poll_query_until('postgres', q{
		SELECT (SELECT count(*) FROM processlist) = 1
		   AND (SELECT count(*) FROM pg_stat_activity
		        WHERE backend_type = 'client backend') = 1}),
	'the process list has exactly one row per client backend');
ok(!$node->log_contains(qr/PANIC|TRAP|terminated by signal/),
	'no PANIC, TRAP or crashed process in the log');

$node->stop;
done_testing();
