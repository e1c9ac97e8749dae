package api

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// workflowsResponse is the body of GET /v1/workflows.
type workflowsResponse struct {
	Workflows []workflowBody `json:"workflows"`
}

// workflowBody is one workflow version: its states, what each takes, and
// its transitions.
type workflowBody struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Default: new orders take this version.
	Default     bool             `json:"default"`
	Initial     string           `json:"initial"`
	States      []workflowState  `json:"states"`
	Transitions []workflowChange `json:"transitions"`
}

// workflowState is one state of a workflow version.
type workflowState struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	Step     string `json:"step,omitempty"`
	Terminal bool   `json:"terminal"`
	// Waiting: the state runs no step and waits for a signal or a
	// deadline.
	Waiting bool   `json:"waiting"`
	Doc     string `json:"doc"`
	// Signals are the signals an order in this state takes: those the
	// definition maps to events (State.OnSignal), and pause and resume in
	// every state that is not terminal (pause while the order is not
	// paused, resume while it is).
	Signals []string `json:"signals"`
}

// workflowChange is one transition.
type workflowChange struct {
	Event string `json:"event"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// listWorkflows is GET /v1/workflows: every workflow version this process
// knows, sorted by name and version.
func (s *Server) listWorkflows(c echo.Context) error {
	reg := s.eng.Registry()
	out := workflowsResponse{Workflows: []workflowBody{}}
	for _, d := range reg.All() {
		def, _ := reg.Default(d.Name)
		w := workflowBody{Name: d.Name, Version: d.Version, Default: def == d, Initial: d.Initial,
			States: []workflowState{}, Transitions: []workflowChange{}}
		for i := range d.States {
			st := &d.States[i]
			signals := slices.Sorted(maps.Keys(st.OnSignal))
			if !st.Terminal() {
				signals = append(signals, engine.SignalPause, engine.SignalResume)
			}
			if signals == nil {
				signals = []string{}
			}
			w.States = append(w.States, workflowState{
				Name: st.Name, Status: string(st.Status), Step: st.Step, Terminal: st.Terminal(), Waiting: st.Waiting(),
				Doc: st.Doc, Signals: signals,
			})
			for _, ev := range d.EventsFrom(st.Name) {
				to, _ := d.Destination(st.Name, ev)
				w.Transitions = append(w.Transitions, workflowChange{Event: ev, From: st.Name, To: to})
			}
		}
		out.Workflows = append(out.Workflows, w)
	}
	return c.JSON(http.StatusOK, out)
}

// getDiagram is GET /v1/workflows/{name}/{version}/diagram?order_id=: the
// workflow version drawn as SVG (statemachine.Layout), and, with order_id,
// the order's path through it since it started or last migrated: its
// transitions ("taken" edges, "visited" states) and the state it is in
// ("current").
func (s *Server) getDiagram(c echo.Context) error {
	name := c.Param("name")
	version, err := strconv.Atoi(c.Param("version"))
	if err != nil || version < 1 {
		return validationProblem([]orders.FieldError{{Field: "version", Message: "must be a positive integer"}})
	}
	def, err := s.eng.Registry().Get(name, version)
	if errors.Is(err, statemachine.ErrUnknownVersion) {
		return problem(http.StatusNotFound, codeNotFound, "Not found", "no workflow "+name+" version "+strconv.Itoa(version))
	}
	if err != nil {
		return err
	}
	var trail statemachine.Trail
	if id := c.QueryParam("order_id"); id != "" {
		if !orders.ValidID(id) {
			return validationProblem([]orders.FieldError{{Field: "order_id", Message: "must match [A-Za-z0-9._:-]{1,128}"}})
		}
		if trail, err = s.trail(c, def, id); err != nil {
			return err
		}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	// The drawing holds no script; forbid any all the same, should it be
	// opened on its own.
	c.Response().Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	return c.Blob(http.StatusOK, "image/svg+xml", def.Layout().SVG(trail))
}

// trail reads order id's path through def from its history: the
// transitions since it started, or since its last migration to another
// version.
func (s *Server) trail(c echo.Context, def *statemachine.Definition, id string) (statemachine.Trail, error) {
	ctx := c.Request().Context()
	in, err := s.store.Load(ctx, id)
	if err != nil {
		return statemachine.Trail{}, err
	}
	if in.Workflow != def.Name || in.Version != def.Version {
		return statemachine.Trail{}, problem(http.StatusConflict, codeConflict, "Conflict",
			"order "+id+" runs "+in.Workflow+" version "+strconv.Itoa(in.Version))
	}
	evs, err := s.store.History(ctx, id)
	if err != nil {
		return statemachine.Trail{}, err
	}
	t := statemachine.Trail{Current: in.State}
	for _, ev := range evs {
		switch ev.Type {
		case statemachine.EventMigrated:
			t.Transitions = nil
		case statemachine.EventTransition:
			t.Transitions = append(t.Transitions, statemachine.TrailStep{From: ev.From, To: ev.To, Event: ev.Event})
		}
	}
	return t, nil
}
