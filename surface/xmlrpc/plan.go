package xmlrpc

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// plan: what a release would do, as relman plan shows it.

func (g *Gateway) registerPlan(s *Server) {
	s.Register("plan", Method{
		Func: g.plan,
		Help: `plan(credentials, request_data) => {request, plan, batches, builders}.
What request_action with this request_data would do, without doing it, as
relman plan --output json prints it: the named targets and their hosts, the
rollout and its batches, approval, lock, webhooks (by name), and the
builders that advertise the project. request_data as request_action's,
without request_id. Faults: 1 unknown project, 3 credentials rejected, 4 bad
request_data or a request the manager refuses (the message says why), 5
relman could not ask the manager, 6 not allowed.`,
		Signatures: [][]string{{"struct", "struct", "struct"}},
	})
}

func (g *Gateway) plan(ctx context.Context, ps []any) (any, error) {
	if len(ps) != 2 {
		return nil, Faultf(CodeInvalidParams, "plan takes (credentials, request_data); got %d params", len(ps))
	}
	p, err := g.authenticate(ctx, ps[0])
	if err != nil {
		return nil, err
	}
	data, ok := ps[1].(map[string]any)
	if !ok {
		return nil, Faultf(CodeInvalidParams, "request_data must be a struct, not %s", TypeName(ps[1]))
	}
	if _, ok := data["request_id"]; ok {
		return nil, Faultf(CodeBadRequest, "plan takes no request_id: it starts nothing")
	}
	req, _, err := g.parseRequest(data)
	if err != nil {
		return nil, err
	}
	req.Requester = p.ID()
	sign, err := g.requestSigner(ctx, p, req)
	if err != nil {
		return nil, err
	}
	res, err := transaction.Plan(ctx, g.Client, g.Config.ManagerQueue, req, sign)
	switch {
	case errors.Is(err, transaction.ErrPlanRefused):
		return nil, Faultf(CodeBadRequest, "the manager refuses the request: %v", err)
	case err != nil:
		return nil, Faultf(CodeInternal, "could not plan: %v", err)
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	// Which builders advertise the project: the plan only says that one
	// does.
	leases, _ := registry.Registry{Client: g.Client, ID: g.Config.RegistryID, ManagerQueue: g.Config.ManagerQueue}.List(ctx, now())
	builders := []string{}
	for _, l := range leases {
		if l.Role == workflows.RoleBuilder && slices.Contains(l.Projects, req.Project) {
			builders = append(builders, l.ID)
		}
	}
	slices.Sort(builders)
	return plainData(struct {
		*workflows.PlanOnlyResult
		Builders []string `json:"builders"`
	}{res, builders})
}
