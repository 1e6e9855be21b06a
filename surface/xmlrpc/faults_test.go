package xmlrpc

import (
	"bufio"
	"context"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/mocks"

	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// readmeFaults reads the README's fault table: code -> meaning.
func readmeFaults(t *testing.T) map[int]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	defer f.Close()
	faults := map[int]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "| code | meaning |":
			in = true
		case in && strings.HasPrefix(line, "| ---"):
		case in && strings.HasPrefix(line, "|"):
			cells := strings.SplitN(strings.Trim(line, "|"), "|", 2)
			require.Len(t, cells, 2, line)
			code, err := strconv.Atoi(strings.TrimSpace(cells[0]))
			require.NoError(t, err, line)
			faults[code] = strings.TrimSpace(cells[1])
		case in:
			in = false
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, faults, "the README has a fault table")
	return faults
}

// gatewayCodes reads the package's Code* constants from its source.
func gatewayCodes(t *testing.T) map[int]string {
	t.Helper()
	pkgs, err := goparser.ParseDir(token.NewFileSet(), ".", func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	require.NoError(t, err)
	codes := map[int]string{}
	for _, pkg := range pkgs {
		for _, file := range pkg.Files {
			for _, d := range file.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if !strings.HasPrefix(n.Name, "Code") || i >= len(vs.Values) {
							continue
						}
						lit := vs.Values[i]
						neg := false
						if u, ok := lit.(*ast.UnaryExpr); ok && u.Op == token.SUB {
							lit, neg = u.X, true
						}
						bl, ok := lit.(*ast.BasicLit)
						require.True(t, ok && bl.Kind == token.INT, "%s is an integer literal", n.Name)
						v, err := strconv.Atoi(bl.Value)
						require.NoError(t, err)
						if neg {
							v = -v
						}
						codes[v] = n.Name
					}
				}
			}
		}
	}
	return codes
}

// TestREADMEFaultTable: every fault code the README lists is one of the
// gateway's constants and every constant is in the README, and the codes
// whose constants say what they refuse are described as such.
func TestREADMEFaultTable(t *testing.T) {
	readme, codes := readmeFaults(t), gatewayCodes(t)
	for code := range readme {
		assert.Contains(t, codes, code, "README fault %d is no constant of the gateway", code)
	}
	for code, name := range codes {
		assert.Contains(t, readme, code, "%s (%d) is not in the README's fault table", name, code)
	}
	checks := map[int][]string{
		CodeUnknownProject:      {"unknown project"},
		CodeUnknownTransaction:  {"unknown transaction"},
		CodeCredentialsRejected: {"credentials rejected"},
		CodeForbidden:           {"policy"},
		CodeDecisionRefused:     {"approve_transaction", "refused"},
		CodeThrottled:           {"failed logins"},
		CodeCancelRefused:       {"cancel_transaction", "refused", "ended"},
		CodeRecordUnverified:    {"record", "verify"},
		CodeMethodNotFound:      {"no such method"},
	}
	for code, words := range checks {
		for _, w := range words {
			assert.Contains(t, readme[code], w, "the README's fault %d", code)
		}
	}
}

// TestCancelEndedTransaction: cancel_transaction on a transaction that
// exists but has ended is fault 9 (CodeCancelRefused), as the README says,
// not 2 (unknown transaction).
func TestCancelEndedTransaction(t *testing.T) {
	c := mocks.NewClient(t)
	c.On("DescribeWorkflowExecution", mock.Anything, "tx-ended", "").Return(&workflowservice.DescribeWorkflowExecutionResponse{
		WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
			Execution: &commonpb.WorkflowExecution{WorkflowId: "tx-ended", RunId: "r"},
			Type:      &commonpb.WorkflowType{Name: workflows.ReleaseWorkflowName},
			Status:    enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
		},
	}, nil)
	c.On("UpdateWorkflow", mock.Anything, mock.Anything).Return(nil, serviceerror.NewNotFound("workflow execution already completed"))
	g := &Gateway{Client: c, Config: &config.Manager{}}
	_, err := g.cancelTransaction(context.Background(), []any{map[string]any{"username": "alice"}, "tx-ended"})
	var f *Fault
	require.ErrorAs(t, err, &f)
	assert.Equal(t, CodeCancelRefused, f.Code)
	assert.Contains(t, f.Message, "has ended")
}
