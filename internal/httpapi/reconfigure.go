package httpapi

import "clamgate/internal/policy"

// reconf is what a configuration reload changes in a front that goes on
// serving: which policy each bearer token chooses, and the policies the
// status page lists.
type reconf struct {
	tokens   func(token string) *policy.Policy
	policies []string
}

// Reconfigure gives a running front the token lookup and the policy names
// of a reloaded configuration, so that the gateway can keep the front, and
// its listeners' connections, when nothing else it serves by changed.
// Requests already running keep the policy they were given.
func (s *Server) Reconfigure(tokens func(token string) *policy.Policy, policies []string) {
	s.reconf.Store(&reconf{tokens: tokens, policies: policies})
}

// current is the token lookup and the status page's policies: the last
// Reconfigure's, else the ones the front was built with.
func (s *Server) current() reconf {
	if rc := s.reconf.Load(); rc != nil {
		return *rc
	}
	rc := reconf{tokens: s.Tokens}
	if s.Status != nil {
		rc.policies = s.Status.Policies
	}
	return rc
}
