package statemachine

import (
	"fmt"
	"html"
	"slices"
	"strings"
)

// Trail is one instance's way through its workflow, drawn over a Layout:
// the transitions it took and the state it is in.
type Trail struct {
	// Transitions are the instance's transitions, oldest first.
	Transitions []TrailStep
	// Current is the state the instance is in; empty draws the workflow
	// alone.
	Current string
}

// TrailStep is one transition of a Trail.
type TrailStep struct {
	From, To, Event string
}

// The class names an SVG drawing gives its parts, for pages to style and
// tests to find: every box is a "state" and every edge an "edge"; the
// trail's edges are also "taken", the states it went through "visited",
// and the one it is in "current".
const (
	ClassState   = "state"
	ClassEdge    = "edge"
	ClassTaken   = "taken"
	ClassVisited = "visited"
	ClassCurrent = "current"
)

// svgColors are the drawing's colors, given as presentation attributes (a
// page's stylesheet overrides them; a Content-Security-Policy without
// inline styles does not block them).
var svgColors = struct {
	edge, taken, box, boxStroke, visited, current, text, sub string
}{
	edge: "#9aa4b1", taken: "#2563eb", box: "#ffffff", boxStroke: "#b8c0cc",
	visited: "#e8f0fe", current: "#2563eb", text: "#1f2937", sub: "#6b7280",
}

// statusStroke is the border of a terminal state's box, by its status.
var statusStroke = map[Status]string{
	StatusCompleted: "#15803d", StatusFailed: "#b91c1c", StatusCancelled: "#6b7280",
}

// SVG renders the layout as a standalone SVG document with t drawn over
// it. It carries no script and no style element, only presentation
// attributes and class names (see ClassState), and every name in it is
// escaped, so a page may insert it as it is. Each box has data-state and
// each edge data-from, data-to and data-events.
func (l *Layout) SVG(t Trail) []byte {
	taken := map[[2]string]bool{}
	fired := map[[2]string][]string{} // the events the trail took, per edge
	visited := map[string]bool{}
	for _, s := range t.Transitions {
		k := [2]string{s.From, s.To}
		taken[k] = true
		if s.Event != "" && !slices.Contains(fired[k], s.Event) {
			fired[k] = append(fired[k], s.Event)
		}
		visited[s.From], visited[s.To] = true, true
	}
	if t.Current != "" {
		visited[t.Current] = true
	}
	var b strings.Builder
	title := fmt.Sprintf("%s workflow, version %d", l.Workflow, l.Version)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="workflow-diagram" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s" font-family="system-ui, sans-serif">`,
		num(l.Width), num(l.Height), num(l.Width), num(l.Height), esc(title))
	fmt.Fprintf(&b, "<title>%s</title>", esc(title))
	b.WriteString(`<defs>`)
	for _, m := range []struct{ id, color string }{{"of-arrow", svgColors.edge}, {"of-arrow-taken", svgColors.taken}} {
		fmt.Fprintf(&b, `<marker id="%s" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="%s"/></marker>`, m.id, m.color)
	}
	b.WriteString(`</defs>`)

	// Edges under boxes, and the trail's edges over the others.
	b.WriteString(`<g class="edges">`)
	for _, pass := range []bool{false, true} {
		for i := range l.Edges {
			e := &l.Edges[i]
			if k := [2]string{e.From, e.To}; taken[k] == pass {
				writeEdge(&b, e, pass, fired[k])
			}
		}
	}
	b.WriteString(`</g><g class="states">`)
	for i := range l.States {
		writeState(&b, &l.States[i], visited[l.States[i].Name], t.Current == l.States[i].Name)
	}
	b.WriteString(`</g></svg>`)
	return []byte(b.String())
}

// writeEdge draws an edge; a taken edge is labelled with the events the
// trail took on it (fired), when it knows them.
func writeEdge(b *strings.Builder, e *LayoutEdge, taken bool, fired []string) {
	class, color, width, marker := ClassEdge, svgColors.edge, "1.4", "of-arrow"
	if taken {
		class, color, width, marker = ClassEdge+" "+ClassTaken, svgColors.taken, "2.6", "of-arrow-taken"
	}
	label, shown := e.LabelText(), e.LabelText()
	if len(fired) > 0 {
		shown = strings.Join(fired, ", ")
	}
	fmt.Fprintf(b, `<g class="%s" data-from="%s" data-to="%s" data-events="%s"><title>%s → %s: %s</title>`,
		class, esc(e.From), esc(e.To), esc(label), esc(e.From), esc(e.To), esc(label))
	fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="%s" stroke-linejoin="round" marker-end="url(#%s)"/>`,
		roundedPath(e.Points, 6), color, width, marker)
	// Only the trail's labels show: the others would crowd the drawing
	// (the title shows them on hover; a stylesheet may show them all).
	weight, visibility := "normal", "hidden"
	if taken {
		weight, visibility = "600", "visible"
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" dominant-baseline="central" font-size="10" font-weight="%s" fill="%s" stroke="#ffffff" stroke-width="3" paint-order="stroke" visibility="%s">%s</text></g>`,
		num(e.Label.X), num(e.Label.Y), weight, color, visibility, esc(shown))
}

func writeState(b *strings.Builder, s *LayoutState, visited, current bool) {
	classes := []string{ClassState, "status-" + string(s.Status)}
	fill, stroke, width, text := svgColors.box, svgColors.boxStroke, "1.2", svgColors.text
	if c, ok := statusStroke[s.Status]; ok {
		stroke, width = c, "1.6"
	}
	if s.Initial {
		classes = append(classes, "initial")
	}
	if s.Terminal {
		classes = append(classes, "terminal")
	}
	if visited {
		classes = append(classes, ClassVisited)
		fill, stroke, width = svgColors.visited, svgColors.taken, "2"
	}
	sub := svgColors.sub
	if current {
		classes = append(classes, ClassCurrent)
		fill, stroke, width, text, sub = svgColors.current, "#1e3a8a", "3", "#ffffff", "#dbeafe"
	}
	fmt.Fprintf(b, `<g class="%s" data-state="%s" data-status="%s"><title>%s: %s</title>`,
		strings.Join(classes, " "), esc(s.Name), esc(string(s.Status)), esc(s.Name), esc(s.Doc))
	rx := "8"
	if s.Terminal {
		rx = "22"
	}
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" rx="%s" fill="%s" stroke="%s" stroke-width="%s"/>`,
		num(s.X), num(s.Y), num(s.W), num(s.H), rx, fill, stroke, width)
	detail := "step " + s.Step
	switch {
	case s.Terminal:
		detail = string(s.Status)
	case s.Waiting:
		detail = "waits for a signal"
	case s.Step == "":
		detail = "runs no step"
	}
	cx := s.X + s.W/2
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" font-size="13" font-weight="600" fill="%s">%s</text>`,
		num(cx), num(s.Y+19), text, esc(s.Name))
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" font-size="10" fill="%s">%s</text></g>`,
		num(cx), num(s.Y+35), sub, esc(detail))
}

// roundedPath is the SVG path data of a polyline of horizontal and vertical
// segments, with its corners rounded by radius r (less where a segment is
// short).
func roundedPath(ps []Point, r float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "M%s %s", num(ps[0].X), num(ps[0].Y))
	for i := 1; i < len(ps)-1; i++ {
		prev, p, next := ps[i-1], ps[i], ps[i+1]
		in, out := dist(prev, p), dist(p, next)
		rr := min(r, in/2, out/2)
		a := toward(p, prev, rr)
		c := toward(p, next, rr)
		fmt.Fprintf(&b, " L%s %s Q%s %s %s %s", num(a.X), num(a.Y), num(p.X), num(p.Y), num(c.X), num(c.Y))
	}
	last := ps[len(ps)-1]
	fmt.Fprintf(&b, " L%s %s", num(last.X), num(last.Y))
	return b.String()
}

// dist is the length of a horizontal or vertical segment.
func dist(a, b Point) float64 { return max(a.X-b.X, b.X-a.X) + max(a.Y-b.Y, b.Y-a.Y) }

// toward returns the point d from p in the direction of q.
func toward(p, q Point, d float64) Point {
	l := dist(p, q)
	if l == 0 {
		return p
	}
	return Point{p.X + (q.X-p.X)*d/l, p.Y + (q.Y-p.Y)*d/l}
}

// num formats a coordinate with at most one decimal.
func num(f float64) string {
	s := fmt.Sprintf("%.1f", f)
	return strings.TrimSuffix(s, ".0")
}

// esc escapes text for an SVG attribute or element.
func esc(s string) string { return html.EscapeString(s) }
