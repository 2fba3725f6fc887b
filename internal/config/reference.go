package config

import _ "embed"

// Reference is the annotated configuration reference: every key, its
// default and what it does. It is the one source of the README's
// "Configuration reference" and of clamgate.toml(5); TestReference holds it
// to the keys the parser takes.
//
//go:embed reference.toml
var Reference string
