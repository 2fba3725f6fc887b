// Package docs holds no code: its tests keep the administrator's
// documentation honest. README.md stays short enough to read in five
// minutes, every relative link in a Markdown file leads somewhere, and
// nothing an administrator reads (README, docs/, the man pages, the packaged
// configuration, doctor's texts) sends them to a document they cannot open,
// such as an article or an issue tracker number.
package docs
