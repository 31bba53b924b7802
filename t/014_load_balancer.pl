# The load balancer (pingcap/tidb#8854): HAProxy, round robin over the three
# nodes of a streaming cluster.  Each round, a new connection through it
# lists the cluster and picks a victim on a random node; another new
# connection through it, most often landing on another node, kills that ID.
# Every round must end exactly the victim, and no other session.

use strict;
use warnings FATAL => 'all';
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use KsNode;
use KsWire;

my $rounds = $ENV{KS_LB_ROUNDS} // 200;
my $per_node = 4;

my @nodes = ks_cluster();

# HAProxy in front of the three nodes' TCP ports.
my $lb_port = PostgreSQL::Test::Cluster::get_free_port();
my $cfg = $nodes[0]->basedir . '/haproxy.cfg';
open(my $fh, '>', $cfg) or die;
print $fh <<"EOF";
global
	maxconn 200
defaults
	mode tcp
	timeout connect 5s
	timeout client 10m
	timeout server 10m
frontend postgres
	bind 127.0.0.1:$lb_port
	default_backend nodes
backend nodes
	balance roundrobin
EOF
printf $fh "\tserver node%d 127.0.0.1:%d\n", $_ + 1, $nodes[$_]->port for 0 .. 2;
close $fh;
my ($lb_out, $lb_err) = ('', '');
my $haproxy = IPC::Run::start([ '/usr/sbin/haproxy', '-db', '-f', $cfg ],
	'>', \$lb_out, '2>', \$lb_err);
for (1 .. 100)
{
	my $up = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
		PeerPort => $lb_port, Proto => 'tcp');
	if ($up) { close $up; last; }
	usleep(50_000);
}

# Run $sql in a new connection through the load balancer: its rows.
sub through_lb
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
			'-h', '127.0.0.1', '-p', $lb_port, '-U', 'postgres',
			'-d', 'postgres', '-c', $sql ],
		'>', \$out, '2>', \$err)
	  or die "psql through the load balancer failed: $err";
	chomp $out;
	return [ map { [ split /\|/ ] } split /\n/, $out ];
}

# The victims: app sessions on every node, by ID.
my %victim;
sub add_victim
{
	my ($node) = @_;
	my $w = KsWire->connect($node, user => 'app');
	$victim{ $w->session_id } = $w;
}
for my $node (@nodes)
{
	add_victim($node) for 1 .. $per_node;
}

my %landed;
my $crossed = 0;
my $right = 0;
for my $round (1 .. $rounds)
{
	my $node = 1 + int(rand(3));
	my $listed = through_lb(q{
		SELECT current_setting('kill_session.node_id'), node, id
		FROM cluster_processlist WHERE "user" = 'app'});
	$landed{"list:$listed->[0][0]"}++;
	my @on_node = grep { $_->[1] == $node } @$listed;
	my $id = $on_node[ int(rand(@on_node)) ][2];
	die "round $round: no victim of node $node listed" unless defined $id;
	die "round $round: $id is not one of the test's sessions" unless $victim{$id};

	my $killed = through_lb("SELECT current_setting('kill_session.node_id'), kill_session('$id')");
	my ($killer_node, $result) = @{ $killed->[0] };
	$landed{"kill:$killer_node"}++;
	$crossed++ if $killer_node != $node;

	my $w = delete $victim{$id};
	my $trace = $w->trace(10 * ks_slow());
	if ($result eq 't'
		&& "@$trace" eq 'E:FATAL:57P01 EOF'
		&& ($w->last_error->{D} // '') =~ /^Session $id was killed by/)
	{
		$right++;
	}
	else
	{
		diag("round $round: kill of $id (node $node) from node $killer_node: $result, @$trace");
	}
	add_victim($nodes[ $node - 1 ]);
}
is($right, $rounds, "$rounds kills through the load balancer, each ended its victim");
cmp_ok($crossed, '>', 0,
	"and $crossed of them were sent to another node than the victim's");
is(scalar(grep { /^list:/ } keys %landed) + scalar(grep { /^kill:/ } keys %landed), 6,
	'lists and kills landed on all three nodes: '
	  . join(', ', map { "$_ $landed{$_}" } sort keys %landed));

# No other session was touched.
my $alive = 0;
for my $id (sort keys %victim)
{
	my $r = $victim{$id}->query('SELECT 1');
	$alive++ if !$r->{error} && !$r->{eof};
}
is($alive, 3 * $per_node, 'every other session lives on');
my $listed = through_lb(q{SELECT id FROM cluster_processlist WHERE "user" = 'app' ORDER BY id});
is_deeply([ map { $_->[0] } @$listed ], [ sort { $a <=> $b } keys %victim ],
	'and the cluster lists exactly them');

$_->close for values %victim;
$haproxy->signal('TERM');
$haproxy->finish;
done_testing();
