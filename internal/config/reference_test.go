package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// TestReference: the reference documents every key the parser takes and
// no key it would refuse.
func TestReference(t *testing.T) {
	dec := toml.NewDecoder(strings.NewReader(Reference))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("reference.toml names a key the parser refuses: %v", err)
	}
	documented := map[string]bool{}
	for key := range keyLines([]byte(Reference)) {
		documented[genericKey(key)] = true
	}
	for _, key := range structKeys(reflect.TypeOf(file{}), "") {
		if !documented[key] {
			t.Errorf("key %s is not in internal/config/reference.toml: document it there (then go test ./internal/config -run README -update)", key)
		}
	}
}

// TestREADMEReference: the README shows the reference as it is.
func TestREADMEReference(t *testing.T) {
	const path = "../../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)(<!-- reference.toml: generated, edit internal/config/reference.toml -->\n```toml\n)(.*?)(```\n)")
	m := re.FindSubmatch(readme)
	if m == nil {
		t.Fatalf("README lacks the generated reference block")
	}
	if string(m[2]) == Reference {
		return
	}
	if *update {
		out := re.ReplaceAllLiteral(readme, slices.Concat(m[1], []byte(Reference), m[3]))
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README's configuration reference differs from internal/config/reference.toml (go test ./internal/config -run README -update)")
}

// genericKey names a key as the struct does: listener[2].mode ->
// listener.mode, policy.amavis.roots -> policy.*.roots.
func genericKey(k string) string {
	k = regexp.MustCompile(`\[\d+\]`).ReplaceAllString(k, "")
	if rest, ok := strings.CutPrefix(k, "policy."); ok {
		if _, key, ok := strings.Cut(rest, "."); ok {
			return "policy.*." + key
		}
		return "policy.*"
	}
	return k
}

func structKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Map {
			key, ft = key+".*", ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() == t.PkgPath() && !isValue(ft) {
			keys = append(keys, structKeys(ft, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// isValue tells the section structs from types that are one value.
func isValue(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeOf((*interface{ UnmarshalText([]byte) error })(nil)).Elem())
}
