package uaserver

import (
	"sync"
	"testing"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
)

// collector drains a gopcua client's notification channel and keeps, per
// client handle, every value received.
type collector struct {
	ch   chan *opcua.PublishNotificationData
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	byHandle map[uint32][]*ua.DataValue
	total    int
	errs     []error
	onValue  func(handle uint32, dv *ua.DataValue) // called under mu
}

// newCollector starts a collector, stopped when the test ends. Create it
// before the client so that it drains until the client is closed.
func newCollector(t testing.TB) *collector {
	c := &collector{
		ch:       make(chan *opcua.PublishNotificationData, 1024),
		stop:     make(chan struct{}),
		byHandle: map[uint32][]*ua.DataValue{},
	}
	c.wg.Add(1)
	go c.run()
	t.Cleanup(func() {
		close(c.stop)
		c.wg.Wait()
	})
	return c
}

func (c *collector) run() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case d := <-c.ch:
			c.mu.Lock()
			if d.Error != nil {
				c.errs = append(c.errs, d.Error)
			}
			if dcn, ok := d.Value.(*ua.DataChangeNotification); ok {
				for _, it := range dcn.MonitoredItems {
					c.total++
					if c.onValue != nil {
						c.onValue(it.ClientHandle, it.Value)
					} else {
						c.byHandle[it.ClientHandle] = append(c.byHandle[it.ClientHandle], it.Value)
					}
				}
			}
			c.mu.Unlock()
		}
	}
}

// values returns a copy of the values received for handle.
func (c *collector) values(handle uint32) []*ua.DataValue {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*ua.DataValue(nil), c.byHandle[handle]...)
}

// last returns the latest value received for handle, or nil.
func (c *collector) last(handle uint32) *ua.DataValue {
	c.mu.Lock()
	defer c.mu.Unlock()
	vs := c.byHandle[handle]
	if len(vs) == 0 {
		return nil
	}
	return vs[len(vs)-1]
}

// count returns the number of notifications received.
func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}
