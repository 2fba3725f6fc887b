module clamgate

go 1.26.0

require (
	github.com/d--j/go-milter v0.10.1
	github.com/fsnotify/fsnotify v1.10.1
	github.com/pelletier/go-toml/v2 v2.4.3
	golang.org/x/sys v0.50.0
)

require (
	github.com/coreos/go-systemd/v22 v22.7.0 // indirect
	github.com/emersion/go-message v0.18.2 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	golang.org/x/text v0.42.0 // indirect
)
