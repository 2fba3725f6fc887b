// Package clientmatrix holds the client matrix: real third-party clamd
// clients, installed from the registries applications get them from
// (Debian, npm, the Go module proxy), each driven through every call it
// offers against a real clamd and against clamgate in front of that clamd,
// with the clients' own return values compared. Its test writes the
// "Clients known to work" table of docs/compatibility.md; the package has no code of
// its own, only that test and the small driver scripts under testdata/.
package clientmatrix
