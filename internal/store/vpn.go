package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Settings the server writes when it starts, so that `sekisho vpn
// add-peer` allocates addresses in the prefix the server really uses and
// prints the endpoint and certificate it really serves.
const (
	SettingVPNNet     = "vpn-net"      // the unit's tunnel address and prefix, "10.77.0.1/24"
	SettingVPNListen  = "vpn-listen"   // the WireGuard UDP address; "" when the VPN is off
	SettingVPNTLSCert = "vpn-tls-cert" // --tls-cert the console's tunnel serves ("" for DATA/tls.crt)
	SettingVPNTLSKey  = "vpn-tls-key"  // --tls-key that goes with it
)

// VPNPeer is one peer of the console's WireGuard interface: a public key
// (base64, as `wg` prints it) and the one tunnel address it may use. Its
// private key never reaches the PBX.
type VPNPeer struct {
	Name      string    `json:"name"`
	PublicKey string    `json:"public_key"`
	Address   string    `json:"address"`
	Created   time.Time `json:"created"`
}

// AddVPNPeer stores p. It returns ErrExists if the name, the key or the
// address is already taken.
func (s *Store) AddVPNPeer(ctx context.Context, p VPNPeer) error {
	created := p.Created
	if created.IsZero() {
		created = time.Now()
	}
	return s.insertUnique(ctx, "vpn peer "+p.Name+" (or its key or address)",
		`INSERT INTO vpn_peers (name, public_key, address, created_at) VALUES (?, ?, ?, ?)`,
		p.Name, p.PublicKey, p.Address, unixMilli(created))
}

// VPNPeers lists the VPN peers by name.
func (s *Store) VPNPeers(ctx context.Context) ([]VPNPeer, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, public_key, address, created_at FROM vpn_peers ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list vpn peers: %w", err)
	}
	defer rows.Close()
	var out []VPNPeer
	for rows.Next() {
		var p VPNPeer
		var created sql.NullInt64
		if err := rows.Scan(&p.Name, &p.PublicKey, &p.Address, &created); err != nil {
			return nil, fmt.Errorf("store: list vpn peers: %w", err)
		}
		p.Created = fromMilli(created)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list vpn peers: %w", err)
	}
	return out, nil
}

// DeleteVPNPeer removes the peer called name. It returns ErrNotFound if
// there is none.
func (s *Store) DeleteVPNPeer(ctx context.Context, name string) error {
	return s.deleteOne(ctx, "vpn peer "+name, `DELETE FROM vpn_peers WHERE name = ?`, name)
}
