package clientmatrix_test

// operation is one row of the matrix: something a client can be asked to
// do. Each client offers a subset; its driver names the call it makes.
type operation struct {
	key   string // the drivers' name for it
	label string // the table's
	eicar bool   // the object holds EICAR: no client may ever report it clean
}

// operations in the order of the table.
var operations = []operation{
	{"ping", "ping", false},
	{"version", "version", false},
	{"stats", "stats", false},
	{"stream-clean", "stream: clean", false},
	{"stream-eicar", "stream: EICAR", true},
	{"stream-empty", "stream: empty", false},
	{"stream-5mib", "stream: 5 MiB, EICAR at its end", true},
	{"stream-over-limit", "stream: over the size limit, EICAR past it", true},
	{"passthrough-eicar", "stream: passthrough of EICAR", true},
	{"file-clean", "file: clean", false},
	{"file-eicar", "file: EICAR", true},
	{"file-list", "list of files", true},
	{"dir-infected", "directory: infected tree", true},
	{"dir-clean", "directory: clean tree", false},
	{"multiscan", "directory: MULTISCAN", true},
	{"allmatch", "directory: ALLMATCHSCAN", true},
	{"fildes", "directory: descriptors passed (FILDES)", true},
	{"legacy-stream", "legacy STREAM of EICAR", true},
	{"rawscan", "legacy RAWSCAN of EICAR", true},
	{"reload", "RELOAD", false},
	{"shutdown", "SHUTDOWN", false},
}

// refusedOps are the commands clamgate refuses on purpose (admin only):
// clamd executes them, clamgate answers with an error.
var refusedOps = map[string]bool{"reload": true, "shutdown": true}

func operationByKey(key string) (operation, bool) {
	for _, op := range operations {
		if op.key == key {
			return op, true
		}
	}
	return operation{}, false
}
