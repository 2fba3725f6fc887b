package gateway_test

import (
	"crypto/rand"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"clamgate/internal/testenv"
)

// BenchmarkTLSCost measures, side by side in one run (rounds interleaved,
// median of the rounds), what TLS costs a client: INSTREAM of 4 KiB and
// 1 MiB over tls: against tcp: to the same gateway, each on a connection
// of its own as clients do, and a scan forwarded edge -> central against
// the same scan sent to the central gateway directly. It reports ratios,
// never a pass or fail:
//
//	go test ./internal/gateway -run '^$' -bench TLSCost -benchtime 1x
func BenchmarkTLSCost(b *testing.B) {
	c := testenv.StartClamd(b, testenv.ClamdOptions{})
	p := newPKI(b)
	tcpAddr := testenv.FreePort(b)
	tlsAddr, _, _ := tlsGatewayWith(b, c, p, "clamd", fmt.Sprintf("[[listener]]\naddress = \"tcp:%s\"\npolicy = \"mx\"\n", tcpAddr))
	cert, key := p.issue(b, "mx1", time.Now(), time.Hour, "dns:mx1.example.org")
	client := p.client(b, cert, key)
	edge, _ := edgeGatewayFor(b, p, testenv.TempDir(b), "dns:mx1.example.org", "tls:"+tlsAddr)
	small, large := make([]byte, 4<<10), make([]byte, 1<<20)
	_, _ = rand.Read(small)
	_, _ = rand.Read(large)
	reqSmall, reqLarge := instream("z", small), instream("z", large)
	plain := func(network, addr string, req []byte) func() error {
		return func() error {
			c, err := net.Dial(network, addr)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Write(req); err != nil {
				return err
			}
			buf := make([]byte, 256)
			n, _ := c.Read(buf)
			if !strings.HasSuffix(string(buf[:n]), "OK\x00") {
				return fmt.Errorf("%q", buf[:n])
			}
			return nil
		}
	}
	secure := func(req []byte) func() error {
		return func() error {
			got, err := tlsExchange(tlsAddr, client, req)
			if err == nil && !strings.HasSuffix(string(got), "OK\x00") {
				err = fmt.Errorf("%q", got)
			}
			return err
		}
	}
	variants := []struct {
		name string
		n    int
		op   func() error
	}{
		{"tcp 4KiB", 200, plain("tcp", tcpAddr, reqSmall)},
		{"tls 4KiB", 200, secure(reqSmall)},
		{"tcp 1MiB", 20, plain("tcp", tcpAddr, reqLarge)},
		{"tls 1MiB", 20, secure(reqLarge)},
		{"edge->central 4KiB", 200, plain("unix", edge, reqSmall)},
		{"edge->central 1MiB", 20, plain("unix", edge, reqLarge)},
	}
	per := make([][]time.Duration, len(variants))
	b.ResetTimer()
	for round := 0; round < 7; round++ {
		for i, v := range variants {
			start := time.Now()
			for range v.n {
				if err := v.op(); err != nil {
					b.Fatalf("%s: %v", v.name, err)
				}
			}
			per[i] = append(per[i], time.Since(start)/time.Duration(v.n))
		}
	}
	b.StopTimer()
	med := make([]time.Duration, len(variants))
	for i := range variants {
		slices.Sort(per[i])
		med[i] = per[i][len(per[i])/2]
		b.Logf("%-20s median %v per scan (rounds: %v)", variants[i].name, med[i], per[i])
	}
	ratio := func(a, b int) float64 { return float64(med[a]) / float64(med[b]) }
	b.ReportMetric(ratio(1, 0), "tls/tcp-4KiB")
	b.ReportMetric(ratio(3, 2), "tls/tcp-1MiB")
	b.ReportMetric(ratio(4, 1), "edge/direct-4KiB")
	b.ReportMetric(ratio(5, 3), "edge/direct-1MiB")
}
