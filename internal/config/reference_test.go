package config

import (
	"reflect"
	"regexp"
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
			t.Errorf("key %s is not in internal/config/reference.toml: document it there (clamgate.toml(5) is generated from it)", key)
		}
	}
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
