package sandbox

import (
	"fmt"
	"strings"
)

// Kind classifies a service error; the front doors map kinds to their own
// answers (HTTP statuses, SSH refusals) in one place each.
type Kind int

const (
	KindInvalid     Kind = iota + 1 // the request is wrong
	KindNotFound                    // the thing does not exist
	KindConflict                    // the thing exists but is in the wrong state, or the name is taken
	KindUnavailable                 // the container engine does not answer
	KindForbidden                   // refused whatever the state (a path leading out of a workspace)
)

// Remedy names what the caller can do about an error, as a fact: each front
// door words it in its own terms (the REST API names its route; the SSH
// gateway, which has no routes, says nothing more). The service's messages
// never name a route.
type Remedy string

const (
	RemedyResume          Remedy = "resume"           // resume the sandbox (Error.Subject)
	RemedyListProjects    Remedy = "list-projects"    // see which projects exist
	RemedyRegisterSSHKey  Remedy = "register-ssh-key" // register the key, or give the public key itself
	RemedyCreateWorkspace Remedy = "create-workspace" // create the workspace first
)

// FieldError is one invalid field of a request.
type FieldError struct {
	Field   string
	Message string
	Remedy  Remedy // "" for none
}

// Error is the service's typed error. Compare with errors.Is against the
// Err* sentinels (which match on Kind), or errors.As to read the details.
type Error struct {
	Kind    Kind
	Message string
	Details []FieldError
	// Code overrides the envelope's code where the upstream API has its own
	// (e.g. WORKSPACE_IN_USE); "" means the code of the kind.
	Code string
	// Remedy is what the caller can do, for the front door to word;
	// Subject is the sandbox it is about.
	Remedy  Remedy
	Subject string
	Err     error // the cause, for logs
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	for _, d := range e.Details {
		fmt.Fprintf(&b, "; %s: %s", d.Field, d.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound) true for every not-found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Kind == e.Kind
}

// Sentinels for errors.Is.
var (
	ErrInvalid     = &Error{Kind: KindInvalid}
	ErrNotFound    = &Error{Kind: KindNotFound}
	ErrConflict    = &Error{Kind: KindConflict}
	ErrUnavailable = &Error{Kind: KindUnavailable}
	ErrForbidden   = &Error{Kind: KindForbidden}
)

func notFound(what string) error { return &Error{Kind: KindNotFound, Message: what + " not found"} }

func conflict(format string, args ...any) error {
	return &Error{Kind: KindConflict, Message: fmt.Sprintf(format, args...)}
}

func (s *Service) unavailable(err error) error {
	return &Error{Kind: KindUnavailable, Message: s.theEngine() + " is not reachable", Err: err}
}

// invalid collects field errors; its err is nil when nothing was wrong.
type invalid []FieldError

func (v *invalid) add(field, format string, args ...any) {
	*v = append(*v, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// addFix is add with a remedy.
func (v *invalid) addFix(r Remedy, field, format string, args ...any) {
	*v = append(*v, FieldError{Field: field, Message: fmt.Sprintf(format, args...), Remedy: r})
}

func (v invalid) err() error {
	if len(v) == 0 {
		return nil
	}
	return &Error{Kind: KindInvalid, Message: "invalid request", Details: v}
}
