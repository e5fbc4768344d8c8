package bridge

import (
	"context"
	"errors"
	"math"
	"reflect"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uacp"
)

// The write path sizes its requests in values and in bytes. A server
// tells its limits in three places, each of which may be absent:
//   - the secure channel's Acknowledge (Part 6, 7.1.2.4): MaxMessageSize
//     and MaxChunkCount × ReceiveBufferSize bound a request message;
//   - the CreateSession response: MaxRequestMessageSize (Part 4, 5.6.2);
//   - ServerCapabilities (Part 5, 6.3.2): MaxArrayLength,
//     MaxStringLength, MaxByteStringLength, and OperationLimits'
//     MaxNodesPerWrite (read by conn.prepare).
//
// A server may also refuse what it never advertised: the write path then
// learns from the refusal (isLimitError) and halves its batch.

// requestOverhead is what a Write request costs besides its values:
// message and security headers, sequence header, request header (with
// an authentication token of up to a few dozen bytes), and slack for
// the security footer (signature, padding) of one chunk.
const requestOverhead = 1024

// defaultMaxRequestBytes bounds a request when the server tells nothing:
// gopcua's own default MaxMessageSize (2 MiB), less a margin.
const defaultMaxRequestBytes = 2<<20 - 4096

// writeLimits are the limits one session's Write requests must respect.
// Zero means no limit.
type writeLimits struct {
	maxBytes       int // one request, encoded
	maxArrayLength int
	maxStringLen   int
	maxByteString  int
}

// isLimitError reports whether err is a server's refusal of a request
// for its size: the request must be split, not retried as it is (and the
// session is not at fault). The codes are those of Part 4, 7.34 and
// Part 6, 7.1.5 for a request too big in operations or in bytes.
func isLimitError(err error) bool {
	if err == nil {
		return false
	}
	for _, code := range limitCodes {
		if errors.Is(err, code) {
			return true
		}
	}
	var ue *uacp.Error
	if errors.As(err, &ue) {
		for _, code := range limitCodes {
			if ua.StatusCode(ue.ErrorCode) == code {
				return true
			}
		}
	}
	return false
}

var limitCodes = []ua.StatusCode{
	ua.StatusBadTooManyOperations,
	ua.StatusBadRequestTooLarge,
	ua.StatusBadEncodingLimitsExceeded,
	ua.StatusBadResponseTooLarge,
	ua.StatusBadTCPMessageTooLarge,
}

// channelLimit returns the largest request message the secure channel
// of a connected client takes, from the server's Acknowledge and its
// CreateSession response (0: unknown). Like clientSocket it reads
// gopcua v0.9.0's unexported fields by reflection, with their types
// checked: a layout change makes it return 0 (the default bound), never
// panic.
func channelLimit(cl *opcua.Client) int {
	if cl == nil {
		return 0
	}
	limit := 0
	tighten := func(v uint64) {
		if v > 0 && v < math.MaxInt32 && (limit == 0 || int(v) < limit) {
			limit = int(v)
		}
	}
	if f := reflect.ValueOf(cl).Elem().FieldByName("conn"); f.IsValid() && f.Type() == reflect.TypeOf((*uacp.Conn)(nil)) && !f.IsNil() {
		c := (*uacp.Conn)(f.UnsafePointer())
		tighten(uint64(c.MaxMessageSize()))
		if n, b := c.MaxChunkCount(), c.ReceiveBufSize(); n > 0 && b > 0 {
			// Each chunk carries a header, a sequence header and, when
			// secured, a signature and padding: count 128 bytes for them.
			per := uint64(b)
			if per > 128 {
				per -= 128
			}
			tighten(uint64(n) * per)
		}
	}
	if s := cl.Session(); s != nil {
		if f := reflect.ValueOf(s).Elem().FieldByName("resp"); f.IsValid() && f.Type() == reflect.TypeOf((*ua.CreateSessionResponse)(nil)) && !f.IsNil() {
			tighten(uint64((*ua.CreateSessionResponse)(f.UnsafePointer()).MaxRequestMessageSize))
		}
	}
	return limit
}

// readWriteLimits reads what bounds a session's Write requests: the
// channel's message size and the server's array and string lengths. A
// capability the server does not offer (or a failed read) leaves its
// limit at 0: never a session fault.
func readWriteLimits(ctx context.Context, cl *opcua.Client) writeLimits {
	l := writeLimits{maxBytes: defaultMaxRequestBytes}
	if n := channelLimit(cl); n > 0 && n < l.maxBytes {
		l.maxBytes = n
	}
	ids := []uint32{id.Server_ServerCapabilities_MaxArrayLength, id.Server_ServerCapabilities_MaxStringLength,
		id.Server_ServerCapabilities_MaxByteStringLength}
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither}
	for _, i := range ids {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: ua.NewNumericNodeID(0, i), AttributeID: ua.AttributeIDValue})
	}
	res, err := cl.Read(ctx, req)
	if err != nil || len(res.Results) != len(ids) {
		return l
	}
	get := func(i int) int {
		if res.Results[i] == nil || res.Results[i].Status != ua.StatusOK || res.Results[i].Value == nil {
			return 0
		}
		if v, ok := res.Results[i].Value.Value().(uint32); ok && v < math.MaxInt32 {
			return int(v)
		}
		return 0
	}
	l.maxArrayLength, l.maxStringLen, l.maxByteString = get(0), get(1), get(2)
	return l
}

// check reports why dv cannot be written under l (ua.StatusGood if it
// can): an array or string longer than the server takes, or a value
// whose request alone exceeds the message size.
func (l writeLimits) check(dv *ua.DataValue, size int) ua.StatusCode {
	if l.maxBytes > 0 && size+requestOverhead > l.maxBytes {
		return ua.StatusBadRequestTooLarge
	}
	if dv == nil || dv.Value == nil {
		return ua.StatusGood
	}
	v := dv.Value
	if l.maxArrayLength > 0 && v.ArrayLength() > int32(l.maxArrayLength) {
		return ua.StatusBadEncodingLimitsExceeded
	}
	switch x := v.Value().(type) {
	case string:
		if l.maxStringLen > 0 && len(x) > l.maxStringLen {
			return ua.StatusBadEncodingLimitsExceeded
		}
	case []byte:
		if l.maxByteString > 0 && len(x) > l.maxByteString {
			return ua.StatusBadEncodingLimitsExceeded
		}
	case []string:
		if l.maxStringLen > 0 {
			for _, s := range x {
				if len(s) > l.maxStringLen {
					return ua.StatusBadEncodingLimitsExceeded
				}
			}
		}
	case [][]byte:
		if l.maxByteString > 0 {
			for _, s := range x {
				if len(s) > l.maxByteString {
					return ua.StatusBadEncodingLimitsExceeded
				}
			}
		}
	}
	return ua.StatusGood
}

// writeValueSize estimates the encoded size of one WriteValue of dv to
// nid, without encoding it for the common types (the hot path): it may
// exceed the true size by a few bytes, never fall short of it by more.
func writeValueSize(nid *ua.NodeID, dv *ua.DataValue) int {
	return nodeIDSize(nid) + dataValueSize(dv)
}

// dataValueSize is writeValueSize without the node id.
func dataValueSize(dv *ua.DataValue) int {
	n := 4 + 4 + 1 + 4 + 8 + 8 + 4 // attribute, index range, mask, status, two timestamps, picoseconds
	if dv != nil && dv.Value != nil {
		n += variantSize(dv.Value)
	}
	return n
}

// nodeIDSize is the encoded size of nid (its StringID allocates: the
// writer caches it per slot).
func nodeIDSize(nid *ua.NodeID) int {
	if nid == nil {
		return 1
	}
	switch nid.Type() {
	case ua.NodeIDTypeString:
		return 3 + 4 + len(nid.StringID())
	case ua.NodeIDTypeByteString:
		return 3 + 4 + len(nid.StringID())
	case ua.NodeIDTypeGUID:
		return 3 + 16
	default:
		return 7
	}
}

// variantSize estimates the encoded size of v (Part 6, 5.2.2.16).
func variantSize(v *ua.Variant) int {
	const hdr = 1 + 4 + 4 // mask, array length, dimensions length
	switch x := v.Value().(type) {
	case nil:
		return 1
	case bool, int8, uint8:
		return hdr + 1
	case int16, uint16:
		return hdr + 2
	case int32, uint32, float32, ua.StatusCode:
		return hdr + 4
	case int64, uint64, float64, time.Time:
		return hdr + 8
	case string:
		return hdr + 4 + len(x)
	case []byte:
		return hdr + 4 + len(x)
	case []bool:
		return hdr + len(x)
	case []int8:
		return hdr + len(x)
	case []int16:
		return hdr + 2*len(x)
	case []uint16:
		return hdr + 2*len(x)
	case []int32:
		return hdr + 4*len(x)
	case []uint32:
		return hdr + 4*len(x)
	case []float32:
		return hdr + 4*len(x)
	case []int64:
		return hdr + 8*len(x)
	case []uint64:
		return hdr + 8*len(x)
	case []float64:
		return hdr + 8*len(x)
	case []string:
		n := hdr
		for _, s := range x {
			n += 4 + len(s)
		}
		return n
	case [][]byte:
		n := hdr
		for _, s := range x {
			n += 4 + len(s)
		}
		return n
	}
	b, err := v.Encode()
	if err != nil {
		return hdr + 64
	}
	return len(b)
}
