package clamdproto

import (
	"context"
	"errors"
	"slices"
	"strings"

	"clamgate/internal/scan"
)

// SelfChecker is the gateway's owner of database reloads, as clamd 1.5's
// SELFCHECK sees it.
type SelfChecker interface {
	// SelfCheck compares the loaded database with its files: true when
	// they match; otherwise it starts the gateway's managed reload (frugal
	// or concurrent, as configured), unless one runs, and returns false.
	SelfCheck(ctx context.Context) (upToDate bool, err error)
}

// selfCheck answers SELFCHECK in clamd 1.5's words. It never reaches
// clamd: a reload behind the gateway's back would skip its memory plan.
func (c *conn) selfCheck(ctx context.Context) bool {
	if c.srv.SelfCheck == nil {
		return c.reply(unknownCommand)
	}
	upToDate, err := c.srv.SelfCheck.SelfCheck(ctx)
	switch {
	case err != nil:
		return c.reply(failure(CmdSelfCheck, err))
	case upToDate:
		return c.reply("DBUPTODATE")
	}
	c.srv.Log.Info("SELFCHECK started a database reload", "client", c.pol.Name, "peer", c.peer.String())
	return c.reply("RELOADING")
}

// commandsMark separates clamd's version from its command list in the
// reply to VERSIONCOMMANDS.
const commandsMark = "| COMMANDS: "

var errNotCommandList = errors.New("clamd sent a reply that is not a command list")

// versionCommands answers VERSIONCOMMANDS with the gateway's own list:
// of the commands the backend lists, those this client's policy may use,
// in the backend's order, and SELFCHECK where the gateway serves it.
// Passing clamd's list through would offer commands the client is then
// refused (RELOAD to a default policy), or hide the gateway's own.
func (c *conn) versionCommands(ctx context.Context) bool {
	res, err := c.srv.Dispatcher.Do(ctx, scan.Job{
		Client: c.pol.Name, Protocol: "clamd", Kind: scan.Command, Command: CmdVersionCommands, Object: CmdVersionCommands,
	})
	if err != nil {
		c.reply(failure(CmdVersionCommands, err))
		return false
	}
	version, list, ok := strings.Cut(res.Reply, commandsMark)
	if !ok {
		return c.badReply(CmdVersionCommands, res.Reply, errNotCommandList)
	}
	var offered []string
	for _, name := range strings.Fields(list) {
		if c.offers(name) && !slices.Contains(offered, name) {
			offered = append(offered, name)
		}
	}
	if c.srv.SelfCheck != nil && c.offers(CmdSelfCheck) && !slices.Contains(offered, CmdSelfCheck) {
		offered = append(offered, CmdSelfCheck)
	}
	return c.reply(version + commandsMark + strings.Join(offered, " "))
}

// offers says whether this client may use the command at this gateway: a
// path command only with a root to scan under, SELFCHECK only where the
// gateway follows a database.
func (c *conn) offers(name string) bool {
	switch {
	case name == CmdSelfCheck && c.srv.SelfCheck == nil:
		return false
	case argCommands[name]:
		return len(c.pol.Roots) > 0 && c.pol.AllowCommand(name) == nil
	}
	return plainCommands[name] && c.pol.AllowCommand(name) == nil
}
