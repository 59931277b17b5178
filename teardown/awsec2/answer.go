package awsec2

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// errNotEC2 reports a successful HTTP status whose body is not EC2's answer
// to the call: empty, an HTML page, another service's XML. The SDK alone
// decodes such a body as an empty success. It is retryable: the call may
// never have reached EC2.
var errNotEC2 = errors.New("awsec2: the answer is not EC2's")

// errNotNamed reports an instance that EC2's answer does not list among
// those it acted on.
var errNotNamed = errors.New("awsec2: EC2's answer does not name the instance")

// maxAnswer bounds the successful answer held in memory to be checked.
const maxAnswer = 64 << 20

func addAnswerCheck(s *middleware.Stack) error {
	return s.Deserialize.Insert(answerCheck{}, "OperationDeserializer", middleware.After)
}

// answerCheck sees each successful answer before the SDK decodes it and
// refuses one whose root element is not <ActionResponse>.
type answerCheck struct{}

func (answerCheck) ID() string { return "leakless.awsec2.answerCheck" }

func (answerCheck) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error,
) {
	out, md, err := next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return out, md, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return out, md, fmt.Errorf("awsec2: read answer: %w", err)
	}
	want := middleware.GetOperationName(ctx) + "Response"
	if got := rootElement(body); got != want {
		return out, md, fmt.Errorf("%w: root element <%s>, want <%s>", errNotEC2, got, want)
	}
	return out, md, nil
}

// rootElement is the local name of body's first element, or "".
func rootElement(body []byte) string {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}
