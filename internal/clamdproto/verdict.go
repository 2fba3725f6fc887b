package clamdproto

import "errors"

// errEarlyVerdict replaces a verdict that came before the whole stream was
// read: it cannot be about all of the client's data. (Whether a reply is a
// verdict at all is scan.ParseVerdict's decision, made in the dispatcher
// for every front.)
var errEarlyVerdict = errors.New("clamd answered before the end of the stream")
