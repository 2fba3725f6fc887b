package config

import _ "embed"

// Reference is the annotated configuration reference: every key, its
// default and what it does. It is the one source of clamgate.toml(5), the
// only place the reference is printed; TestReference holds it
// to the keys the parser takes.
//
//go:embed reference.toml
var Reference string
