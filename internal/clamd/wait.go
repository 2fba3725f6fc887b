package clamd

import (
	"context"
	"errors"
	"time"
)

// Commander is what WaitPing needs: a Client, a Pool, or anything that
// sends clamd commands.
type Commander interface {
	Command(ctx context.Context, name string) (string, error)
}

// WaitPing polls a clamd until it answers PONG or ctx ends: a clamd that
// is starting, restarting or reloading its database without concurrency.
func WaitPing(ctx context.Context, c Commander) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		reply, err := c.Command(ctx, "PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-tick.C:
		}
	}
}
