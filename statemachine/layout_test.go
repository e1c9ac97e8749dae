package statemachine

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"

	"github.com/looplab/fsm"
	"github.com/stretchr/testify/require"
)

// registeredOrders returns every built-in order workflow version.
func registeredOrders(t *testing.T) []*Definition {
	t.Helper()
	r, err := OrderRegistry(OrderV2Options{Warehouses: []string{"east", "west"}}, 2)
	require.NoError(t, err)
	return r.All()
}

func TestLayoutDrawsEveryStateAndTransition(t *testing.T) {
	t.Parallel()
	for _, d := range registeredOrders(t) {
		t.Run(d.Key(), func(t *testing.T) {
			t.Parallel()
			l := d.Layout()
			require.Len(t, l.States, len(d.States))
			boxes := map[string]LayoutState{}
			for _, s := range l.States {
				boxes[s.Name] = s
				require.Positive(t, s.W)
				require.LessOrEqual(t, s.X+s.W, l.Width)
				require.LessOrEqual(t, s.Y+s.H, l.Height)
			}
			for i, a := range l.States {
				for _, b := range l.States[i+1:] {
					require.False(t, a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H, "%s overlaps %s", a.Name, b.Name)
				}
			}

			// Every transition is on the edge between its two states.
			want := map[string]bool{}
			for _, s := range d.States {
				for _, ev := range d.EventsFrom(s.Name) {
					to, err := d.Destination(s.Name, ev)
					require.NoError(t, err)
					want[fmt.Sprintf("%s -%s-> %s", s.Name, ev, to)] = true
				}
			}
			got := map[string]bool{}
			for _, e := range l.Edges {
				for _, ev := range e.Events {
					got[fmt.Sprintf("%s -%s-> %s", e.From, ev, e.To)] = true
				}
			}
			require.Equal(t, want, got)

			for _, e := range l.Edges {
				src, dst := boxes[e.From], boxes[e.To]
				require.Equal(t, Point{src.X + src.W, src.Y + src.H/2}, e.Points[0], "%s→%s leaves its source's right side", e.From, e.To)
				require.Equal(t, Point{dst.X, dst.Y + dst.H/2}, e.Points[len(e.Points)-1], "%s→%s enters its destination's left side", e.From, e.To)
				for k := 0; k+1 < len(e.Points); k++ {
					a, b := e.Points[k], e.Points[k+1]
					require.True(t, a.X == b.X || a.Y == b.Y, "%s→%s: segment %v-%v is neither horizontal nor vertical", e.From, e.To, a, b)
					for _, s := range l.States {
						require.False(t, crosses(a, b, s), "%s→%s: segment %v-%v crosses %s", e.From, e.To, a, b, s.Name)
					}
				}
			}
		})
	}
}

// crosses reports whether segment a-b runs through the inside of box s
// (touching its sides, where edges start and end, does not count).
func crosses(a, b Point, s LayoutState) bool {
	x0, x1 := min(a.X, b.X), max(a.X, b.X)
	y0, y1 := min(a.Y, b.Y), max(a.Y, b.Y)
	return x0 < s.X+s.W && x1 > s.X && y0 < s.Y+s.H && y1 > s.Y && !(x0 == x1 && (x0 <= s.X || x0 >= s.X+s.W)) &&
		!(y0 == y1 && (y0 <= s.Y || y0 >= s.Y+s.H))
}

func TestLayoutColumns(t *testing.T) {
	t.Parallel()
	l := compiledOrderV1(t).Layout()
	col, row := map[string]int{}, map[string]int{}
	for _, s := range l.States {
		col[s.Name], row[s.Name] = s.Column, s.Row
	}
	// Breadth first from pending, the terminal states last.
	require.Equal(t, map[string]int{
		OrderPending: 0, OrderReserving: 1, OrderCharging: 2, OrderRefunding: 2, OrderShipping: 3, OrderReleasing: 3,
		OrderCompleted: 4, OrderFailed: 4, OrderCancelled: 4,
	}, col)
	// The way to completed is the top row.
	for _, s := range []string{OrderPending, OrderReserving, OrderCharging, OrderShipping, OrderCompleted} {
		require.Zero(t, row[s], s)
	}
	require.Equal(t, l, compiledOrderV1(t).Layout(), "the same definition, the same drawing")
}

// svgNode is an element of a rendered drawing, as far as the tests read it.
type svgNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []svgNode  `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// walk calls f with n and every element under it.
func (n svgNode) walk(f func(svgNode)) {
	f(n)
	for _, c := range n.Nodes {
		c.walk(f)
	}
}

// classed returns the data- attribute key of every element with class c:
// "from>to" for an edge, the name for a state.
func classed(root svgNode, c string) []string {
	var out []string
	root.walk(func(n svgNode) {
		if !strings.Contains(" "+n.attr("class")+" ", " "+c+" ") {
			return
		}
		if s := n.attr("data-state"); s != "" {
			out = append(out, s)
		} else {
			out = append(out, n.attr("data-from")+">"+n.attr("data-to"))
		}
	})
	return out
}

func TestSVGHighlightsTheTrail(t *testing.T) {
	t.Parallel()
	d := compiledOrderV1(t)
	trail := Trail{Current: OrderReleasing, Transitions: []TrailStep{
		{From: OrderPending, To: OrderReserving, Event: "start"},
		{From: OrderReserving, To: OrderCharging, Event: "reserved"},
		{From: OrderCharging, To: OrderReleasing, Event: "charge_failed"},
	}}
	var root svgNode
	require.NoError(t, xml.Unmarshal(d.Layout().SVG(trail), &root), "the drawing is well-formed XML")
	require.Equal(t, "svg", root.XMLName.Local)
	require.Equal(t, "http://www.w3.org/2000/svg", root.XMLName.Space)

	require.Len(t, classed(root, ClassState), len(d.States))
	require.ElementsMatch(t, []string{"pending>reserving", "reserving>charging", "charging>releasing"}, classed(root, ClassTaken))
	require.ElementsMatch(t, []string{OrderPending, OrderReserving, OrderCharging, OrderReleasing}, classed(root, ClassVisited))
	require.Equal(t, []string{OrderReleasing}, classed(root, ClassCurrent))

	root.walk(func(n svgNode) {
		require.NotEqual(t, "script", n.XMLName.Local)
		require.NotEqual(t, "style", n.XMLName.Local, "presentation attributes only: a page's CSP may forbid inline styles")
		for _, a := range n.Attrs {
			require.False(t, strings.HasPrefix(a.Name.Local, "on"), "no event handler attribute: %s", a.Name.Local)
			require.NotEqual(t, "style", a.Name.Local)
		}
	})

	// Without a trail nothing is highlighted.
	var plain svgNode
	require.NoError(t, xml.Unmarshal(d.Layout().SVG(Trail{}), &plain))
	require.Empty(t, classed(plain, ClassTaken))
	require.Empty(t, classed(plain, ClassCurrent))
}

func TestSVGEscapesNames(t *testing.T) {
	t.Parallel()
	d := &Definition{Name: `w<script>"&`, Version: 1, Initial: "a", States: []State{
		{Name: "a", Status: StatusRunning, OnSuccess: "go", Doc: `<img src=x onerror="alert(1)">`},
		{Name: "b", Status: StatusCompleted, Doc: "done"},
	}}
	d.Events = fsm.Events{{Name: "go", Src: []string{"a"}, Dst: "b"}}
	require.NoError(t, NewRegistry().Register(d))
	out := string(d.Layout().SVG(Trail{Current: "a"}))
	require.NotContains(t, out, "<script>")
	require.NotContains(t, out, "<img")
	var root svgNode
	require.NoError(t, xml.Unmarshal([]byte(out), &root))
}
