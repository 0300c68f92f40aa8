package schema

import (
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// DecodeScan, DecodeFast and DecodeReflect are the three decoders behind Decode,
// the first two compared with the last by FuzzScanDecode and FuzzFastDecode;
// Promote is compared with PromoteReflect by FuzzPromote.
var (
	DecodeScan    = decodeScan
	PlainPrefix   = plainPrefix
	ScanString    = scanString
	MayHaveUpper  = mayHaveUpper
	DecodeFast    = decodeFast
	DecodeReflect = decodeReflect
	Promote       = promote
)

// DecodeReference is Decode with the reflection decoder alone, as Decode was before
// it had faster paths: FuzzDecodeTiers holds Decode to it.
func DecodeReference(data []byte) (*Event, error) {
	ev, err := decodeReflect(data)
	if err != nil {
		return nil, err
	}
	return validated(ev, false)
}

// PromoteReflect is the reflection-driven promotion promote replaced: the reference
// it must agree with.
func PromoteReflect(c *Correlation, metadata jsontext.Value) {
	var p struct {
		UserID          jsontext.Value `json:"userId"`
		OrganizationID  jsontext.Value `json:"organizationId"`
		ResourceID      jsontext.Value `json:"resourceId"`
		RunID           jsontext.Value `json:"runId"`
		SessionID       jsontext.Value `json:"sessionId"`
		ThreadID        jsontext.Value `json:"threadId"`
		RequestID       jsontext.Value `json:"requestId"`
		Environment     jsontext.Value `json:"environment"`
		Source          jsontext.Value `json:"source"`
		ServiceName     jsontext.Value `json:"serviceName"`
		ExperimentID    jsontext.Value `json:"experimentId"`
		EntityVersionID jsontext.Value `json:"entityVersionId"`
	}
	if json.Unmarshal(metadata, &p) != nil {
		return
	}
	set := func(dst *string, v jsontext.Value) {
		if *dst != "" || len(v) == 0 || v.Kind() != '"' {
			return
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			*dst = s
		}
	}
	set(&c.UserID, p.UserID)
	set(&c.OrganizationID, p.OrganizationID)
	set(&c.ResourceID, p.ResourceID)
	set(&c.RunID, p.RunID)
	set(&c.SessionID, p.SessionID)
	set(&c.ThreadID, p.ThreadID)
	set(&c.RequestID, p.RequestID)
	set(&c.Environment, p.Environment)
	set(&c.Source, p.Source)
	set(&c.ServiceName, p.ServiceName)
	set(&c.ExperimentID, p.ExperimentID)
	set(&c.EntityVersionID, p.EntityVersionID)
}

// JSONCheck is the binary codec's fast payload check: true only for valid JSON.
func JSONCheck(v []byte) bool {
	var c jsonCheck
	return c.valid(v)
}
