package statemachine

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// Layout is a drawing of a workflow definition, computed from its
// transition table alone: the states are boxes in columns by their
// distance from the initial state (breadth first), with the terminal
// states in a last column of their own so that every way to an end reads
// left to right; within a column the states keep their documentation
// order. Transitions are orthogonal paths routed through the gaps between
// columns and the corridors between rows, each in a lane of its own, so
// that no path crosses a box. Transitions between the same two states
// share one edge. Coordinates are in pixels from the top left.
type Layout struct {
	// Workflow and Version name the definition drawn.
	Workflow string
	Version  int
	// Width and Height are the drawing's size.
	Width, Height float64
	// States are the boxes, in the definition's order.
	States []LayoutState
	// Edges are the transitions, sorted by source and destination.
	Edges []LayoutEdge

	gapW, corridorH map[int]float64 // the channels wider than the least
	colX, rowY      []float64
}

// LayoutState is one state's box.
type LayoutState struct {
	Name   string
	Status Status
	// Step is the activity the state runs, or "".
	Step string
	// Doc is what the state means (State.Doc).
	Doc string
	// Initial and Terminal mark the first state and the final ones;
	// Waiting marks a state that waits for a signal or a deadline.
	Initial, Terminal, Waiting bool
	// Column and Row place the box in the grid; X, Y, W and H in pixels.
	Column, Row int
	X, Y, W, H  float64
}

// LayoutEdge is the edge of the transitions from one state to another.
type LayoutEdge struct {
	From, To string
	// Events are the events that make the transition, sorted.
	Events []string
	// Points is the path, from the source box's side to the destination
	// box's side, as a polyline of horizontal and vertical segments.
	Points []Point
	// Label is where the center of the events' label goes.
	Label Point
}

// Point is a position in a Layout.
type Point struct{ X, Y float64 }

// The geometry of a layout, in pixels.
const (
	layoutBoxW    = 150.0
	layoutBoxH    = 46.0
	layoutColGap  = 100.0 // the narrowest gap between columns
	layoutRowGap  = 56.0  // the narrowest corridor between rows
	layoutMargin  = 24.0
	layoutLane    = 8.0 // between the lanes of a gap or a corridor
	layoutCharW   = 6.0 // the width of a label's character, roughly
	layoutLabelH  = 13.0
	layoutLabelPd = 3.0
)

// channel names a gap between columns (vertical: gap c is right of
// column c, gap -1 left of column 0) or a corridor between rows
// (horizontal: corridor r is below row r), in which edges get lanes.
type channel struct {
	vertical bool
	n        int
}

// Layout draws the definition (see Layout). The result depends only on the
// definition's states and events.
func (d *Definition) Layout() *Layout {
	l := &Layout{Workflow: d.Name, Version: d.Version}
	col := d.columns()
	main := d.mainPath()
	index := map[string]int{}
	for _, s := range d.States {
		index[s.Name] = len(l.States)
		l.States = append(l.States, LayoutState{
			Name: s.Name, Status: s.Status, Step: s.Step, Doc: s.Doc,
			Initial: s.Name == d.Initial, Terminal: s.Terminal(), Waiting: s.Waiting(),
			Column: col[s.Name], W: layoutBoxW, H: layoutBoxH,
		})
	}
	// Rows: in each column the states of the main path first, then the
	// others in the definition's order.
	order := make([]int, len(l.States))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(rank(!main[l.States[a].Name]), rank(!main[l.States[b].Name]))
	})
	rows := map[int]int{}
	for _, i := range order {
		s := &l.States[i]
		s.Row = rows[s.Column]
		rows[s.Column]++
	}
	l.Edges = d.edges()
	routes := l.channels(index)
	l.place(routes)
	l.route(index, routes)
	l.placeLabels()
	return l
}

// rank is 1 for true, 0 for false.
func rank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// columns returns each state's column: its breadth-first distance from the
// initial state, terminal states after every other column, and states
// that cannot be reached in column 0.
func (d *Definition) columns() map[string]int {
	dist, _ := d.bfs()
	last := 0
	for _, s := range d.States {
		if !s.Terminal() {
			last = max(last, dist[s.Name])
		}
	}
	col := make(map[string]int, len(d.States))
	for _, s := range d.States {
		switch {
		case s.Terminal():
			col[s.Name] = last + 1
		default:
			col[s.Name] = dist[s.Name] // 0 when unreachable
		}
	}
	return col
}

// bfs returns each reachable state's distance from the initial state, and
// the state it was first reached from.
func (d *Definition) bfs() (dist map[string]int, parent map[string]string) {
	dist, parent = map[string]int{d.Initial: 0}, map[string]string{}
	queue := []string{d.Initial}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, ev := range d.EventsFrom(s) {
			dst := d.table[s][ev]
			if _, seen := dist[dst]; !seen {
				dist[dst], parent[dst] = dist[s]+1, s
				queue = append(queue, dst)
			}
		}
	}
	return dist, parent
}

// mainPath returns the states of a shortest way from the initial state to
// the first completed state the definition declares: the way an instance
// goes when all goes well, drawn along the top row.
func (d *Definition) mainPath() map[string]bool {
	_, parent := d.bfs()
	on := map[string]bool{d.Initial: true}
	for _, s := range d.States {
		if s.Status != StatusCompleted {
			continue
		}
		for at := s.Name; at != d.Initial && at != ""; at = parent[at] {
			on[at] = true
		}
		break
	}
	return on
}

// edges returns one edge per pair of states that some event connects,
// sorted by source and destination.
func (d *Definition) edges() []LayoutEdge {
	type pair struct{ from, to string }
	events := map[pair][]string{}
	for src, evs := range d.table {
		for ev, dst := range evs {
			p := pair{src, dst}
			events[p] = append(events[p], ev)
		}
	}
	pairs := slices.SortedFunc(maps.Keys(events), func(a, b pair) int {
		return cmp.Or(strings.Compare(a.from, b.from), strings.Compare(a.to, b.to))
	})
	out := make([]LayoutEdge, 0, len(pairs))
	for _, p := range pairs {
		evs := events[p]
		slices.Sort(evs)
		out = append(out, LayoutEdge{From: p.from, To: p.to, Events: evs})
	}
	return out
}

// edgeRoute is the channels one edge runs through, with its lane's offset
// from each channel's middle.
type edgeRoute struct {
	out      channel // the gap after the source's column
	corridor *channel
	in       *channel // the gap before the destination's column, when not out
	offset   map[channel]float64
}

// channels decides which gaps and corridors each edge runs through, and
// its lane in each. An edge to the next column needs only the gap between
// them; any other goes along the corridor beside the destination's row,
// on the source's side (below it when they share a row).
func (l *Layout) channels(index map[string]int) []edgeRoute {
	routes := make([]edgeRoute, len(l.Edges))
	lanes := map[channel][]int{}
	for i, e := range l.Edges {
		src, dst := l.States[index[e.From]], l.States[index[e.To]]
		r := edgeRoute{out: channel{true, src.Column}, offset: map[channel]float64{}}
		lanes[r.out] = append(lanes[r.out], i)
		if dst.Column != src.Column+1 {
			c := channel{false, dst.Row}
			if dst.Row > src.Row {
				c.n = dst.Row - 1
			}
			in := channel{true, dst.Column - 1}
			r.corridor, r.in = &c, &in
			lanes[c] = append(lanes[c], i)
			if in != r.out {
				lanes[in] = append(lanes[in], i)
			}
		}
		routes[i] = r
	}
	// In each channel the edges are spread evenly, in the order of their
	// sources' rows, then their destinations' rows, which keeps lines that
	// leave and enter neighbouring boxes from crossing.
	l.gapW, l.corridorH = map[int]float64{}, map[int]float64{}
	for ch, edges := range lanes {
		slices.SortStableFunc(edges, func(a, b int) int {
			sa, sb := l.States[index[l.Edges[a].From]], l.States[index[l.Edges[b].From]]
			da, db := l.States[index[l.Edges[a].To]], l.States[index[l.Edges[b].To]]
			return cmp.Or(cmp.Compare(sa.Row, sb.Row), cmp.Compare(da.Row, db.Row), cmp.Compare(a, b))
		})
		for k, e := range edges {
			routes[e].offset[ch] = (float64(k) - float64(len(edges)-1)/2) * layoutLane
		}
		need := float64(len(edges)-1)*layoutLane + 2*layoutLabelH + 8
		if ch.vertical {
			l.gapW[ch.n] = max(layoutColGap, need)
		} else {
			l.corridorH[ch.n] = max(layoutRowGap, need)
		}
	}
	return routes
}

// place sets the boxes' coordinates and the drawing's size, with every gap
// and corridor wide enough for its lanes.
func (l *Layout) place(routes []edgeRoute) {
	gap := func(c int) float64 { return cmp.Or(l.gapW[c], layoutColGap) }
	corridor := func(r int) float64 { return cmp.Or(l.corridorH[r], layoutRowGap) }
	maxCol, maxRow := 0, 0
	for _, s := range l.States {
		maxCol, maxRow = max(maxCol, s.Column), max(maxRow, s.Row)
	}
	l.colX, l.rowY = make([]float64, maxCol+1), make([]float64, maxRow+1)
	x := layoutMargin + max(0, l.gapW[-1])
	for c := range l.colX {
		l.colX[c] = x
		x += layoutBoxW + gap(c)
	}
	y := layoutMargin
	for r := range l.rowY {
		l.rowY[r] = y
		y += layoutBoxH + corridor(r)
	}
	for i := range l.States {
		s := &l.States[i]
		s.X, s.Y = l.colX[s.Column], l.rowY[s.Row]
	}
	l.Width = l.colX[maxCol] + layoutBoxW + max(layoutMargin, l.gapW[maxCol])
	l.Height = l.rowY[maxRow] + layoutBoxH + max(layoutMargin, l.corridorH[maxRow])
}

// route gives every edge its path: out of the source box's right side into
// the gap after its column, along a corridor when the destination is not
// in the next column, down or up the gap before the destination's column,
// and into the destination box's left side.
func (l *Layout) route(index map[string]int, routes []edgeRoute) {
	gapX := func(c int) float64 {
		if c < 0 {
			return l.colX[0] - l.gapW[-1]/2
		}
		return l.colX[c] + layoutBoxW + cmp.Or(l.gapW[c], layoutColGap)/2
	}
	corridorY := func(r int) float64 { return l.rowY[r] + layoutBoxH + cmp.Or(l.corridorH[r], layoutRowGap)/2 }
	for i := range l.Edges {
		e, r := &l.Edges[i], routes[i]
		src, dst := l.States[index[e.From]], l.States[index[e.To]]
		sy, dy := src.Y+src.H/2, dst.Y+dst.H/2
		out := gapX(r.out.n) + r.offset[r.out]
		start, end := Point{src.X + src.W, sy}, Point{dst.X, dy}
		if r.corridor == nil {
			e.Points = simplify([]Point{start, {out, sy}, {out, dy}, end})
			continue
		}
		cy := corridorY(r.corridor.n) + r.offset[*r.corridor]
		in := gapX(r.in.n) + r.offset[*r.in]
		e.Points = simplify([]Point{start, {out, sy}, {out, cy}, {in, cy}, {in, dy}, end})
	}
}

// simplify drops the points of a polyline that lie on a straight line
// between their neighbours.
func simplify(ps []Point) []Point {
	out := []Point{ps[0]}
	for i := 1; i < len(ps)-1; i++ {
		a, b, c := out[len(out)-1], ps[i], ps[i+1]
		if (a.X == b.X && b.X == c.X) || (a.Y == b.Y && b.Y == c.Y) {
			continue
		}
		out = append(out, b)
	}
	return append(out, ps[len(ps)-1])
}

// rect is a box that a label must not cover.
type rect struct{ x0, y0, x1, y1 float64 }

func (r rect) overlaps(o rect) bool {
	return r.x0 < o.x1 && o.x0 < r.x1 && r.y0 < o.y1 && o.y0 < r.y1
}

// LabelText is the text of an edge's label: its events, comma separated.
func (e *LayoutEdge) LabelText() string { return strings.Join(e.Events, ", ") }

// placeLabels puts each edge's label at the middle of one of its segments:
// the first, longest first, where it covers no box and no label placed
// before, or else on the longest segment.
func (l *Layout) placeLabels() {
	var taken []rect
	for _, s := range l.States {
		taken = append(taken, rect{s.X - 2, s.Y - 2, s.X + s.W + 2, s.Y + s.H + 2})
	}
	for i := range l.Edges {
		e := &l.Edges[i]
		w := float64(len(e.LabelText()))*layoutCharW + 2*layoutLabelPd
		segs := make([]int, len(e.Points)-1)
		for k := range segs {
			segs[k] = k
		}
		length := func(k int) float64 {
			a, b := e.Points[k], e.Points[k+1]
			return max(a.X-b.X, b.X-a.X) + max(a.Y-b.Y, b.Y-a.Y)
		}
		slices.SortStableFunc(segs, func(a, b int) int { return cmp.Compare(length(b), length(a)) })
		box := func(p Point) rect {
			return rect{p.X - w/2, p.Y - layoutLabelH/2, p.X + w/2, p.Y + layoutLabelH/2}
		}
		var candidates []Point
		for _, k := range segs {
			a, b := e.Points[k], e.Points[k+1]
			mid := Point{(a.X + b.X) / 2, (a.Y + b.Y) / 2}
			candidates = append(candidates, mid)
			// Beside a horizontal segment's middle, and higher or lower
			// along a vertical one.
			if a.Y == b.Y {
				candidates = append(candidates, Point{mid.X, mid.Y - layoutLabelH}, Point{mid.X, mid.Y + layoutLabelH})
			} else {
				q := (b.Y - a.Y) / 4
				candidates = append(candidates, Point{mid.X, mid.Y - q}, Point{mid.X, mid.Y + q})
			}
		}
		e.Label = candidates[0]
	place:
		for _, p := range candidates {
			b := box(p)
			for _, t := range taken {
				if b.overlaps(t) {
					continue place
				}
			}
			e.Label = p
			break
		}
		taken = append(taken, box(e.Label))
	}
}
