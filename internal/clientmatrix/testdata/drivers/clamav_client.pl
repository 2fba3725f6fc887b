# Drives Perl's ClamAV::Client (libclamav-client-perl) through every call it
# offers: ping, version, scan_path (SCAN, and RAWSCAN in raw mode),
# scan_path_complete (CONTSCAN), scan_scalar (the legacy STREAM), reload and
# quit. Reads the plan (ARGV[0], JSON), prints operation -> result.
use strict;
use warnings;
use ClamAV::Client;
use JSON::PP;

my $plan = do {
    open(my $fh, '<', $ARGV[0]) or die "plan: $!";
    local $/;
    decode_json(<$fh>);
};
my %f = %{ $plan->{files} };

sub client {
    return ClamAV::Client->new(socket_name => $plan->{unix}) if $plan->{unix};
    return ClamAV::Client->new(socket_host => $plan->{host}, socket_port => $plan->{port});
}

# scan_path returns (path, virus): an undefined virus means clean.
sub path_result {
    my ($path, $virus) = @_;
    return ([$path, $virus], defined $virus ? 'infected' : 'clean');
}

# scan_path_complete returns path => virus for each infection: none is clean.
sub complete_result {
    my %h = @_;
    return (\%h, %h ? 'infected' : 'clean');
}

my $eicar = do {
    open(my $fh, '<', $f{eicar}) or die "eicar: $!";
    local $/;
    <$fh>;
};

my @ops = (
    ['ping', 'ping', sub { (client()->ping, '') }],
    ['version', 'version', sub { (client()->version, '') }],
    ['file-clean', 'scan_path', sub { path_result(client()->scan_path($f{clean})) }],
    ['file-eicar', 'scan_path', sub { path_result(client()->scan_path($f{eicar})) }],
    ['dir-infected', 'scan_path_complete', sub { complete_result(client()->scan_path_complete($f{dir})) }],
    ['dir-clean', 'scan_path_complete', sub { complete_result(client()->scan_path_complete($f{cleandir})) }],
    ['legacy-stream', 'scan_scalar (STREAM)', sub {
        my $v = client()->scan_scalar(\$eicar);
        ($v, defined $v ? 'infected' : 'clean');
    }],
    ['rawscan', 'scan_path raw (RAWSCAN)', sub {
        path_result(client()->scan_path($f{eicar}, ClamAV::Client::SCAN_MODE_RAW));
    }],
    ['reload', 'reload', sub { (client()->reload, '') }],
    ['shutdown', 'quit', sub { (client()->quit, '') }],
);

my %out;
for my $op (@ops) {
    my ($name, $call, $code) = @$op;
    my ($value, $verdict);
    my $ok = eval { ($value, $verdict) = $code->(); 1 };
    if ($ok) {
        $out{$name} = { call => $call, value => $value, verdict => $verdict };
    } else {
        my $e = $@;
        $e = ref $e && $e->can('text') ? $e->text : "$e";
        $e =~ s/ at \S+ line \d+\.?\n?\z//;
        $out{$name} = { call => $call, error => $e, verdict => 'error' };
    }
}
print JSON::PP->new->canonical->encode(\%out), "\n";
