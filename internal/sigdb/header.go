package sigdb

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HeaderSize is the length of the ASCII header that starts every .cvd, .cld
// and .cud file.
const HeaderSize = 512

const headerMagic = "ClamAV-VDB:"

// headerTimeLayout is sigtool's strftime("%d %b %Y %H-%M %z"): the hour and
// minute are joined by a dash because the header's fields are split on ':'.
const headerTimeLayout = "02 Jan 2006 15-04 -0700"

// Header fields, in the order sigtool writes them after the magic.
const (
	fieldTime = iota + 1
	fieldVersion
	fieldSignatures
	fieldLevel
	fieldMD5
	fieldDSig
	fieldBuilder
	fieldUnixTime
)

// ParseHeader reads the 512-byte header of a signed (or sigtool --unsigned)
// container. Only the header's own fields are set; Name, Kind, Size and
// ModTime are the caller's, who knows the file. The digital signature is
// not verified: clamd does that when it loads the file, and a gateway that
// only reports what is on disk must not refuse to describe a bad file.
func ParseHeader(b []byte) (File, error) {
	if len(b) < HeaderSize {
		return File{}, fmt.Errorf("truncated header: %d bytes, want %d", len(b), HeaderSize)
	}
	b = b[:HeaderSize]
	if !bytes.HasPrefix(b, []byte(headerMagic)) {
		return File{}, fmt.Errorf("not a ClamAV database: header does not start with %q", headerMagic)
	}
	fields := strings.Split(strings.TrimRight(string(b), " \x00\r\n"), ":")
	if len(fields) <= fieldBuilder {
		return File{}, fmt.Errorf("header has %d fields, want at least %d", len(fields), fieldBuilder+1)
	}
	var f File
	var err error
	if f.Version, err = number("version", fields[fieldVersion]); err != nil {
		return File{}, err
	}
	if f.Signatures, err = number("signature count", fields[fieldSignatures]); err != nil {
		return File{}, err
	}
	if f.Level, err = number("functionality level", fields[fieldLevel]); err != nil {
		return File{}, err
	}
	f.Builder = fields[fieldBuilder]
	if f.BuildTime, err = buildTime(fields); err != nil {
		return File{}, err
	}
	return f, nil
}

// buildTime prefers the unix time (sigtool's "stime", the value clamd
// reports in VERSION) to the human-readable field, which has only minute
// precision; only old-format files lack the unix time.
func buildTime(fields []string) (time.Time, error) {
	if len(fields) > fieldUnixTime && strings.TrimSpace(fields[fieldUnixTime]) != "" {
		secs, err := number("unix time", fields[fieldUnixTime])
		if err != nil {
			return time.Time{}, err
		}
		return time.Unix(int64(secs), 0), nil
	}
	t, err := time.Parse(headerTimeLayout, strings.TrimSpace(fields[fieldTime]))
	if err != nil {
		return time.Time{}, fmt.Errorf("build time %q: want the form %q", fields[fieldTime], headerTimeLayout)
	}
	return t, nil
}

// number accepts what clamd's cli_isnumber accepts: ASCII digits only, so
// that "+5", " 5" or "0x5" are reported as the corruption they are.
func number(what, s string) (int, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s %q is not a number", what, s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s %q is out of range", what, s)
		}
		return 0, fmt.Errorf("%s %q is not a number", what, s)
	}
	return int(n), nil
}
