// CSV form of mappings (also described in CSV.md).
//
// A mapping CSV file is RFC 4180 CSV, UTF-8 (a leading byte-order mark is
// ignored) or UTF-16 with a byte-order mark, separated by commas,
// semicolons or tabs (or what a "sep=X" first line names), with a header
// row naming the columns. Columns may come in any order; each may appear
// once; unknown columns are errors; columns without a name are ignored
// while their cells are empty. Every row is one mapping; rows of
// separators only are skipped. Cells are trimmed of surrounding spaces; an
// empty cell means "not set" (the default). The columns:
//
//	id                  mapping UUID; empty: ReadCSV assigns a new random one
//	source_server       required column: server name of the source
//	source_node         required column: NodeID of the source
//	target_server       required column: server name of the target
//	target_node         required column: NodeID of the target
//	direction           read (default), write or both
//	group               group name
//	deadband_type       absolute or percent; empty: no deadband
//	deadband_value      number; required when deadband_type is set
//	scale_raw_low       number; the four scale_* numbers are given
//	scale_raw_high      together, or not at all (no scaling)
//	scale_eng_low       number
//	scale_eng_high      number
//	scale_out_of_range  reject or clamp (default clamp); needs scaling
//	convert_to          OPC UA built-in type name, e.g. Int16
//	convert_rounding    reject (default), round or truncate
//	convert_overflow    reject (default) or clamp
//	sampling_interval   Go duration, e.g. 250ms
//	queue_size          whole number
//	enabled             true or false (default true)
//	on_bad              hold (default) or write_status
//
// WriteCSV writes all columns in the order above; numbers use Go's
// shortest round-tripping form (strconv 'g', -1), durations Go's
// time.Duration.String. A file WriteCSV wrote reads back to the same
// mappings, and CSV → YAML → CSV gives the same bytes.

package mapping

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/uuid"
)

// csvColumns is the documented header, in the order WriteCSV writes it.
var csvColumns = []string{
	"id", "source_server", "source_node", "target_server", "target_node",
	"direction", "group", "deadband_type", "deadband_value",
	"scale_raw_low", "scale_raw_high", "scale_eng_low", "scale_eng_high", "scale_out_of_range",
	"convert_to", "convert_rounding", "convert_overflow",
	"sampling_interval", "queue_size", "enabled", "on_bad",
}

// csvIndex is the position of every column in csvColumns.
var csvIndex = func() map[string]int {
	idx := make(map[string]int, len(csvColumns))
	for i, c := range csvColumns {
		idx[c] = i
	}
	return idx
}()

// csvRequired are the columns a CSV file must have.
var csvRequired = []string{"source_server", "source_node", "target_server", "target_node"}

// CSVColumns returns the CSV header in the order WriteCSV writes it. See
// the top of csv.go or CSV.md for what each column holds.
func CSVColumns() []string {
	return append([]string(nil), csvColumns...)
}

// ReadCSV reads mappings from CSV (format: CSVColumns, CSV.md); file names
// the input in errors and in every mapping's Pos. It checks the file's
// structure and each cell's type, not references or ranges (Validate does,
// once the mappings are in a Config). It returns every problem found as
// Errors, each naming file, line and column.
//
// What spreadsheets write is accepted: UTF-8 with or without a byte-order
// mark, UTF-16 with one; a first line "sep=;" naming the separator, or
// else a comma, semicolon or tab separator recognised from the header;
// rows that hold nothing but separators and blanks; columns without a
// name in the header, as long as their cells are empty. Anything else
// (UTF-16 without a byte-order mark, UTF-32) is refused with the reason.
//
// Mappings without an id get a new random UUID (AssignIDs), so write the
// result out to keep them stable.
func ReadCSV(r io.Reader, file string) ([]Mapping, error) {
	return ReadCSVInto(r, file, nil)
}

// ReadCSVInto is ReadCSV for mappings that replace base (the mappings of
// the config they are imported into): a row without an id that maps the
// same source to the same target as a mapping of base keeps that
// mapping's id — it is the same mapping, not a removal and an addition —
// and the other rows without an id get a new random UUID.
func ReadCSVInto(r io.Reader, file string, base []Mapping) ([]Mapping, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("mapping: read csv %s: %w", file, err)
	}
	text, ferr := csvText(data, file)
	if ferr != nil {
		return nil, Errors{ferr}
	}
	sep, skipped, ferr := csvSeparator(text, file)
	if ferr != nil {
		return nil, Errors{ferr}
	}
	text = text[skipped:]
	offset := 0 // lines before the reader's first line (the sep= line)
	if skipped > 0 {
		offset = 1
	}

	cr := csv.NewReader(strings.NewReader(text))
	cr.Comma = sep
	cr.FieldsPerRecord = -1 // counted here, with a better message
	var errs errorList
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			errs.add(Pos{file, 1 + offset}, "", "", ErrMissing, "empty file: the first line must be the header (%s)", strings.Join(csvColumns, ","))
			return nil, errs.errs
		}
		return nil, Errors{csvSyntaxError(file, offset, err)}
	}
	headerLine, _ := cr.FieldPos(0)
	headerLine += offset
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			// A column without a name: spreadsheets add them. Its cells
			// must be empty (checked per row).
		case !contains(csvColumns, h):
			errs.add(Pos{file, headerLine}, h, "", ErrUnknownKey, "unknown column %q%s", h, suggest(h, csvColumns))
		default:
			if first, dup := col[h]; dup {
				errs.add(Pos{file, headerLine}, h, "", ErrDuplicate, "column given twice (columns %d and %d)", first+1, i+1)
				continue
			}
			col[h] = i
		}
	}
	for _, req := range csvRequired {
		if _, ok := col[req]; !ok {
			errs.add(Pos{file, headerLine}, req, "", ErrMissing, "required column is missing")
		}
	}
	// The rows are checked even when the header has problems, so that one
	// run shows every error.

	var ms []Mapping
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs.errs = append(errs.errs, csvSyntaxError(file, offset, err))
			break
		}
		if blankRecord(rec) {
			continue // a row of separators only
		}
		line, _ := cr.FieldPos(0)
		line += offset
		if !checkCells(&errs, Pos{file, line}, header, rec, sep) {
			continue
		}
		row := csvRow{file: file, line: line, rec: rec, col: col, errs: &errs}
		ms = append(ms, row.mapping())
	}
	if errs.errs != nil {
		return nil, errs.errs
	}
	if len(base) > 0 {
		keep := make(map[[2]NodeRef]string, len(base))
		for _, m := range base {
			keep[[2]NodeRef{m.Source, m.Target}] = m.ID
		}
		for i := range ms {
			if id, ok := keep[[2]NodeRef{ms[i].Source, ms[i].Target}]; ok && ms[i].ID == "" {
				ms[i].ID = id
			}
		}
	}
	AssignIDs(ms)
	return ms, nil
}

// csvText decodes the bytes of a CSV file: UTF-8 (a byte-order mark is
// dropped) or UTF-16 with a byte-order mark (as spreadsheets save
// "Unicode text"). Encodings it cannot tell apart reliably are refused
// with the reason; invalid UTF-8 in cells is reported per cell.
func csvText(data []byte, file string) (string, *FieldError) {
	refuse := func(msg string) *FieldError {
		return &FieldError{Pos: Pos{file, 1}, Msg: msg, Err: ErrSyntax}
	}
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE, 0, 0}), bytes.HasPrefix(data, []byte{0, 0, 0xFE, 0xFF}):
		return "", refuse("the file is UTF-32, which is not supported: save it as CSV UTF-8")
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		return string(data[3:]), nil
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		return utf16Text(data[2:], binary.LittleEndian, refuse)
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		return utf16Text(data[2:], binary.BigEndian, refuse)
	}
	// UTF-16 without a byte-order mark: a header of ASCII names has a zero
	// byte beside every letter.
	if len(data) >= 4 && (data[0] == 0 && data[2] == 0 || data[1] == 0 && data[3] == 0) {
		return "", refuse("the file looks like UTF-16 without a byte-order mark: save it as CSV UTF-8 (or UTF-16 with a byte-order mark)")
	}
	return string(data), nil
}

// utf16Text decodes UTF-16 code units in byte order bo. Unpaired
// surrogates become U+FFFD.
func utf16Text(b []byte, bo binary.ByteOrder, refuse func(string) *FieldError) (string, *FieldError) {
	if len(b)%2 != 0 {
		return "", refuse("the file starts with a UTF-16 byte-order mark but has an odd number of bytes: it is cut off or not UTF-16")
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = bo.Uint16(b[2*i:])
	}
	return string(utf16.Decode(units)), nil
}

// csvSeparators are the separators recognised from the header, by how
// many known column names each one splits it into.
var csvSeparators = []rune{',', ';', '\t'}

// sepLine matches the "sep=;" first line spreadsheets write and read.
var sepLine = regexp.MustCompile(`(?i)^"?sep=(.)"?[,;\t]*$`)

// csvSeparator finds the separator of text: given by a "sep=X" first line
// (skipped then has that line's length), or the one of csvSeparators that
// splits the header into the most known column names (comma on a tie).
func csvSeparator(text, file string) (sep rune, skipped int, _ *FieldError) {
	first, _, found := strings.Cut(text, "\n")
	first = strings.TrimSuffix(first, "\r")
	if m := sepLine.FindStringSubmatch(first); m != nil {
		r, _ := utf8.DecodeRuneInString(m[1])
		if r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError || unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' {
			return 0, 0, &FieldError{Pos: Pos{file, 1}, Value: m[1], Err: ErrInvalidValue,
				Msg: "the sep= line names a separator that cannot separate CSV cells; use sep=, or sep=; or sep=<tab>"}
		}
		skipped = len(text) // only the sep= line
		if found {
			skipped = strings.Index(text, "\n") + 1
		}
		return r, skipped, nil
	}
	best, bestN := ',', -1
	for _, c := range csvSeparators {
		n := 0
		for _, name := range strings.Split(first, string(c)) {
			if contains(csvColumns, strings.TrimSpace(strings.Trim(strings.TrimSpace(name), `"`))) {
				n++
			}
		}
		if n > bestN {
			best, bestN = c, n
		}
	}
	return best, 0, nil
}

// blankRecord reports whether every cell of rec is empty or blank.
func blankRecord(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// checkCells reports cells that have no column (beyond the header, or
// under a header cell without a name) and rows shorter than the header.
// It returns false when the row cannot be read as a mapping.
func checkCells(errs *errorList, pos Pos, header, rec []string, sep rune) bool {
	var stray []int // cells with a value but no column name
	for i, c := range rec {
		if strings.TrimSpace(c) != "" && (i >= len(header) || strings.TrimSpace(header[i]) == "") {
			stray = append(stray, i)
		}
	}
	switch {
	case len(rec) > len(header) && len(stray) > 0:
		// More cells than columns: most often a separator inside a cell
		// that is not quoted.
		hint := ""
		if sep == ';' || sep == ',' {
			hint = fmt.Sprintf(`; a cell that holds %q must be quoted ("ns=2;s=a")`, sep)
		}
		errs.add(pos, "", "", ErrSyntax, "the row has %d cells but the header %d columns%s", len(rec), len(header), hint)
		return false
	case len(rec) < len(header):
		errs.add(pos, "", "", ErrSyntax, "the row has %d cells but the header %d columns (every row needs a cell, maybe empty, for every column)", len(rec), len(header))
		return false
	}
	for _, i := range stray {
		errs.add(pos, fmt.Sprintf("column %d", i+1), strings.TrimSpace(rec[i]), ErrSyntax, "a value in a column without a name in the header")
	}
	return len(stray) == 0
}

// AssignIDs gives every mapping without an id a new random UUID (v4).
// Use it when importing mappings that are then written out, so their ids
// stay stable from then on.
func AssignIDs(ms []Mapping) {
	for i := range ms {
		if ms[i].ID == "" {
			ms[i].ID = uuid.New().String()
		}
	}
}

// csvSyntaxError turns an encoding/csv error into a FieldError; offset is
// the number of file lines before the reader's first line.
func csvSyntaxError(file string, offset int, err error) *FieldError {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		where := fmt.Sprintf("column %d", pe.Column)
		if pe.Line != pe.StartLine {
			where = fmt.Sprintf("line %d, column %d", pe.Line+offset, pe.Column)
		}
		return &FieldError{
			Pos: Pos{file, pe.StartLine + offset},
			Msg: fmt.Sprintf("%v (%s)", pe.Err, where),
			Err: fmt.Errorf("%w: %w", ErrSyntax, err),
		}
	}
	return &FieldError{Pos: Pos{file, 0}, Msg: err.Error(), Err: fmt.Errorf("%w: %w", ErrSyntax, err)}
}

// csvRow decodes one record.
type csvRow struct {
	file string
	line int
	rec  []string
	col  map[string]int
	errs *errorList
}

// get returns the trimmed cell of column name ("" when the column is
// absent).
func (r *csvRow) get(name string) string {
	i, ok := r.col[name]
	if !ok || i >= len(r.rec) {
		return ""
	}
	return strings.TrimSpace(r.rec[i])
}

// fail records a problem with column name.
func (r *csvRow) fail(name, value string, sentinel error, format string, args ...any) {
	r.errs.add(Pos{r.file, r.line}, name, value, sentinel, format, args...)
}

// float parses a number cell.
func (r *csvRow) float(name string) float64 {
	s := r.get(name)
	if s == "" {
		r.fail(name, "", ErrMissing, "a number is required here")
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		r.fail(name, s, ErrInvalidValue, "must be a number")
	}
	if f == 0 {
		f = 0 // -0 is 0: YAML cannot write the sign back
	}
	return f
}

// mapping decodes the row.
func (r *csvRow) mapping() Mapping {
	for _, name := range csvColumns {
		if i, ok := r.col[name]; ok && i < len(r.rec) && !utf8.ValidString(r.rec[i]) {
			r.fail(name, r.rec[i], ErrInvalidValue, "not valid UTF-8 (save the file as UTF-8)")
		}
	}
	m := Mapping{
		ID:        r.get("id"),
		Source:    NodeRef{Server: r.get("source_server"), Node: r.get("source_node")},
		Target:    NodeRef{Server: r.get("target_server"), Node: r.get("target_node")},
		Direction: Direction(r.get("direction")),
		Group:     r.get("group"),
		OnBad:     OnBad(r.get("on_bad")),
		Pos:       Pos{r.file, r.line},
	}

	if t := r.get("deadband_type"); t != "" {
		m.Deadband = &Deadband{Type: DeadbandType(t), Value: r.float("deadband_value")}
	} else if v := r.get("deadband_value"); v != "" {
		r.fail("deadband_value", v, ErrMissing, "a deadband value needs a deadband_type (absolute or percent)")
	}

	scale := []string{"scale_raw_low", "scale_raw_high", "scale_eng_low", "scale_eng_high", "scale_out_of_range"}
	scaled := false
	for _, c := range scale {
		scaled = scaled || r.get(c) != ""
	}
	if scaled {
		m.Scaling = &Scaling{
			RawLow:     r.float("scale_raw_low"),
			RawHigh:    r.float("scale_raw_high"),
			EngLow:     r.float("scale_eng_low"),
			EngHigh:    r.float("scale_eng_high"),
			OutOfRange: OutOfRange(r.get("scale_out_of_range")),
		}
	}

	cv := Conversion{
		To:       r.get("convert_to"),
		Rounding: Rounding(r.get("convert_rounding")),
		Overflow: OutOfRange(r.get("convert_overflow")),
	}
	if cv != (Conversion{}) {
		m.Convert = &cv
	}

	if s := r.get("sampling_interval"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			r.fail("sampling_interval", s, ErrInvalidValue, "%s", err.Error())
		}
		m.SamplingInterval = d
	}
	if s := r.get("queue_size"); s != "" {
		q, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			r.fail("queue_size", s, ErrInvalidValue, "must be a whole number in 0..4294967295")
		}
		m.QueueSize = uint32(q)
	}
	if s := r.get("enabled"); s != "" {
		switch strings.ToLower(s) {
		case "true":
			t := true
			m.Enabled = &t
		case "false":
			f := false
			m.Enabled = &f
		default:
			r.fail("enabled", s, ErrInvalidValue, "must be true or false")
		}
	}
	return m
}

// WriteCSV writes mappings as CSV with the full header (CSVColumns). Pos
// is not written. Values are written as they are (an explicit "read"
// stays "read"), so ReadCSV gives the same mappings back.
func WriteCSV(w io.Writer, ms []Mapping) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvColumns); err != nil {
		return fmt.Errorf("mapping: write csv: %w", err)
	}
	rec := make([]string, len(csvColumns))
	for i := range ms {
		m := &ms[i]
		clear(rec)
		set := func(name, v string) { rec[csvIndex[name]] = v }
		set("id", m.ID)
		set("source_server", m.Source.Server)
		set("source_node", m.Source.Node)
		set("target_server", m.Target.Server)
		set("target_node", m.Target.Node)
		set("direction", string(m.Direction))
		set("group", m.Group)
		if db := m.Deadband; db != nil {
			set("deadband_type", string(db.Type))
			set("deadband_value", fmtFloat(db.Value))
		}
		if sc := m.Scaling; sc != nil {
			set("scale_raw_low", fmtFloat(sc.RawLow))
			set("scale_raw_high", fmtFloat(sc.RawHigh))
			set("scale_eng_low", fmtFloat(sc.EngLow))
			set("scale_eng_high", fmtFloat(sc.EngHigh))
			set("scale_out_of_range", string(sc.OutOfRange))
		}
		if cv := m.Convert; cv != nil {
			set("convert_to", cv.To)
			set("convert_rounding", string(cv.Rounding))
			set("convert_overflow", string(cv.Overflow))
		}
		if m.SamplingInterval != 0 {
			set("sampling_interval", m.SamplingInterval.String())
		}
		if m.QueueSize != 0 {
			set("queue_size", strconv.FormatUint(uint64(m.QueueSize), 10))
		}
		if m.Enabled != nil {
			set("enabled", strconv.FormatBool(*m.Enabled))
		}
		set("on_bad", string(m.OnBad))
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("mapping: write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("mapping: write csv: %w", err)
	}
	return nil
}
