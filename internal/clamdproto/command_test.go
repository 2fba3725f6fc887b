package clamdproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadCommand(t *testing.T) {
	tests := []struct {
		in      string
		framing Framing
		name    string
		arg     string
	}{
		{"zPING\x00", Null, CmdPing, ""},
		{"nPING\n", Newline, CmdPing, ""},
		{"PING\n", Bare, CmdPing, ""},
		{"zSCAN /a b/c\x00", Null, CmdScan, "/a b/c"},
		{"nCONTSCAN /x\n", Newline, CmdContScan, "/x"},
		{"zSCAN \x00", Null, CmdScan, ""},
		{"zSCAN\x00", Null, "", ""},
		{"zping\x00", Null, "", ""},
		{"zPING  \x00", Null, "", ""},
		{"zVERSION x\x00", Null, "", ""},
		{"zINSTREAM\x00", Null, CmdInstream, ""},
		{"z\x00", Null, "", ""},
		{"\n", Bare, "", ""},
		{"PIN", Bare, "", ""}, // half-closed without terminator
		{"zSCAN /with\nnewline\x00", Null, CmdScan, "/with\nnewline"},
		// What clamd 1.4 does with unprefixed commands, seen black-box.
		{"PING", Bare, CmdPing, ""},
		{"SCAN /a b", Bare, CmdScan, "/a b"},
		{"PING\r\n", Bare, CmdPing, ""},
		{"PING\r\r", Bare, CmdPing, ""},
		{"PING\nVERSION\n", Bare, CmdPing, ""},
		{"PING\x00x", Bare, CmdPing, ""},
		{"SCAN /e\x00junk\nx", Bare, CmdScan, "/e"},
		{"SCAN /e\rjunk", Bare, CmdScan, "/e\rjunk"},
		{"PING x", Bare, "", ""},
		{"\nPING", Bare, "", ""},
		{"nPING\x00x\n", Newline, CmdPing, ""},
		{"nPING\r\n", Newline, CmdPing, ""},
		{"zPING\r\x00", Null, "", ""},
	}
	for _, tc := range tests {
		cmd, err := ReadCommand(bufio.NewReader(strings.NewReader(tc.in)))
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if cmd.Framing != tc.framing || cmd.Name != tc.name || cmd.Arg != tc.arg {
			t.Errorf("%q: got framing %q name %q arg %q", tc.in, cmd.Framing, cmd.Name, cmd.Arg)
		}
	}
}

// An unprefixed command is what one read returned: the rest of a command
// split over two writes is not waited for, as clamd does not wait either.
func TestReadCommandBarePacket(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("PI"))
		_, _ = pw.Write([]byte("NG"))
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	cmd, err := ReadCommand(br)
	if err != nil || cmd.Raw != "PI" || cmd.Known() {
		t.Fatalf("first packet: %+v, %v", cmd, err)
	}
	if cmd, err = ReadCommand(br); err != nil || cmd.Raw != "NG" {
		t.Fatalf("second packet: %+v, %v", cmd, err)
	}
}

func TestReadCommandTooLong(t *testing.T) {
	in := "zSCAN /" + strings.Repeat("a", MaxCommandLen) + "\x00"
	for _, in := range []string{in, in[1:]} {
		_, err := ReadCommand(bufio.NewReaderSize(strings.NewReader(in), 2*MaxCommandLen))
		if !errors.Is(err, ErrCommandTooLong) {
			t.Errorf("%.10q: got %v, want ErrCommandTooLong", in, err)
		}
	}
}

func frames(chunks ...[]byte) []byte {
	var b bytes.Buffer
	for _, c := range chunks {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(c)))
		b.Write(c)
	}
	b.Write([]byte{0, 0, 0, 0})
	return b.Bytes()
}

func TestChunkReader(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		limit int64
		want  string
		err   error
	}{
		{"empty", frames(), 0, "", nil},
		{"two chunks", frames([]byte("hello "), []byte("world")), 0, "hello world", nil},
		{"at limit", frames([]byte("12345")), 5, "12345", nil},
		{"over limit on header", frames([]byte("123"), []byte("456")), 5, "123", ErrSizeLimit},
		{"truncated data", []byte{0, 0, 0, 10, 'a', 'b'}, 0, "ab", io.ErrUnexpectedEOF},
		{"truncated header", []byte{0, 0}, 0, "", io.ErrUnexpectedEOF},
		{"no terminator", []byte{0, 0, 0, 1, 'a'}, 0, "a", io.ErrUnexpectedEOF},
		{"huge announced", []byte{0xff, 0xff, 0xff, 0xff}, 100 << 20, "", ErrSizeLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := io.ReadAll(NewChunkReader(bytes.NewReader(tc.in), tc.limit))
			if string(got) != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// The bytes after the terminating zero chunk belong to the next command.
func TestChunkReaderStopsAtTerminator(t *testing.T) {
	in := append(frames([]byte("data")), []byte("zPING\x00")...)
	br := bufio.NewReader(bytes.NewReader(in))
	if _, err := io.ReadAll(NewChunkReader(br, 0)); err != nil {
		t.Fatal(err)
	}
	cmd, err := ReadCommand(br)
	if err != nil || cmd.Name != CmdPing {
		t.Fatalf("next command: %+v, %v", cmd, err)
	}
}

func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{"zPING\x00", "nSCAN /x\n", "PING\n", "zIDSESSION\x00zPING\x00", "z\x00", "n", "SCAN ",
		"PING", "SCAN /x\x00y\nz", "PING\r\r\nVERSION", "nPING\x00x\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		for i := 0; i < 8; i++ {
			cmd, err := ReadCommand(br)
			if err != nil {
				return
			}
			if cmd.Known() && !plainCommands[cmd.Name] && !argCommands[cmd.Name] {
				t.Fatalf("recognised a command clamd does not know: %+v", cmd)
			}
			if len(cmd.Raw) > MaxCommandLen+1 {
				t.Fatalf("command of %d bytes accepted", len(cmd.Raw))
			}
		}
	})
}

func FuzzChunkReader(f *testing.F) {
	f.Add(frames([]byte("hello")), int64(0))
	f.Add(frames([]byte("a"), []byte("bc")), int64(2))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, int64(10))
	f.Fuzz(func(t *testing.T, in []byte, limit int64) {
		cr := NewChunkReader(bytes.NewReader(in), limit)
		got, err := io.ReadAll(cr)
		if limit > 0 && int64(len(got)) > limit {
			t.Fatalf("read %d bytes past the %d limit", len(got), limit)
		}
		if int64(len(got)) > cr.Total() {
			t.Fatalf("read %d bytes, announced %d", len(got), cr.Total())
		}
		if err == nil && int64(len(got)) != cr.Total() {
			t.Fatalf("clean end after %d of %d announced bytes", len(got), cr.Total())
		}
	})
}
