"""ELBv2 beyond the basics through boto3: listener rules, tags, load balancer and listener
attributes, ModifyListener, SetSubnets/SetSecurityGroups/SetIpAddressType, the account limits,
and the operations the lab refuses with their reason."""
import botocore.exceptions
import botocore.session
import pytest

from orchestrator.elbv2 import operations
from orchestrator.models import Listener, ListenerRule, LoadBalancer
from tests.support.api import assert_model_shape
from tests.support.common import free_port
from tests.support.elb import elbv2  # noqa: F401  (fixture)


def code_of(call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["Error"]["Code"]


@pytest.fixture
def web(elbv2):  # noqa: F811
    """A load balancer with a listener forwarding to target group web-tg, and a second group api-tg."""
    lb = elbv2.create_load_balancer(Name="web-lb", Subnets=["subnet-1"])["LoadBalancers"][0]
    groups = {name: elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, TargetType="ip")["TargetGroups"][0]
              for name in ("web-tg", "api-tg")}
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=free_port(),
        DefaultActions=[{"Type": "forward", "TargetGroupArn": groups["web-tg"]["TargetGroupArn"]}])["Listeners"][0]
    return {"lb": lb, "listener": listener, "web": groups["web-tg"], "api": groups["api-tg"]}


def _forward(group):
    return [{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}]


def test_a_rule_is_created_described_modified_reprioritised_and_deleted(elbv2, web):  # noqa: F811
    created = elbv2.create_rule(
        ListenerArn=web["listener"]["ListenerArn"], Priority=10, Actions=_forward(web["api"]),
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
        Tags=[{"Key": "team", "Value": "api"}])
    assert_model_shape("CreateRule", created, "elbv2")
    rule = created["Rules"][0]
    assert rule["Priority"] == "10" and rule["IsDefault"] is False
    assert rule["Conditions"][0]["PathPatternConfig"]["Values"] == ["/api/*"]

    described = elbv2.describe_rules(ListenerArn=web["listener"]["ListenerArn"])
    assert_model_shape("DescribeRules", described, "elbv2")
    assert [r["Priority"] for r in described["Rules"]] == ["10", "default"]
    default = described["Rules"][1]
    assert default["IsDefault"] is True and default["Actions"][0]["TargetGroupArn"] == web["web"]["TargetGroupArn"]
    # The api target group is now in use by the load balancer (through the rule).
    api = elbv2.describe_target_groups(TargetGroupArns=[web["api"]["TargetGroupArn"]])["TargetGroups"][0]
    assert api["LoadBalancerArns"] == [web["lb"]["LoadBalancerArn"]]
    assert code_of(elbv2.delete_target_group, TargetGroupArn=web["api"]["TargetGroupArn"]) == "ResourceInUse"

    modified = elbv2.modify_rule(RuleArn=rule["RuleArn"], Conditions=[
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["api.*"]}}])["Rules"][0]
    assert modified["Conditions"][0]["Field"] == "host-header"
    second = elbv2.create_rule(ListenerArn=web["listener"]["ListenerArn"], Priority=20, Actions=_forward(web["web"]),
                               Conditions=[{"Field": "http-request-method",
                                            "HttpRequestMethodConfig": {"Values": ["POST"]}}])["Rules"][0]
    swapped = elbv2.set_rule_priorities(RulePriorities=[
        {"RuleArn": rule["RuleArn"], "Priority": 20}, {"RuleArn": second["RuleArn"], "Priority": 10}])
    assert_model_shape("SetRulePriorities", swapped, "elbv2")
    assert [r["RuleArn"] for r in elbv2.describe_rules(ListenerArn=web["listener"]["ListenerArn"])["Rules"]] == [
        second["RuleArn"], rule["RuleArn"], default["RuleArn"]]

    elbv2.delete_rule(RuleArn=rule["RuleArn"])
    assert code_of(elbv2.describe_rules, RuleArns=[rule["RuleArn"]]) == "RuleNotFound"
    elbv2.delete_rule(RuleArn=second["RuleArn"])
    elbv2.delete_target_group(TargetGroupArn=web["api"]["TargetGroupArn"])  # no longer in use


@pytest.mark.parametrize("conditions, code", [
    ([], "ValidationError"),
    ([{"Field": "cookie", "Values": ["x"]}], "ValidationError"),
    ([{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a", "/b", "/c", "/d"]}}], "ValidationError"),
    ([{"Field": "path-pattern", "Values": ["/a <script>"]}], "ValidationError"),
    ([{"Field": "path-pattern", "Values": ["/a"]}, {"Field": "path-pattern", "Values": ["/b"]}], "ValidationError"),
    ([{"Field": "source-ip", "SourceIpConfig": {"Values": ["not-a-cidr"]}}], "ValidationError"),
    ([{"Field": "path-pattern", "RegexValues": ["^/a$"]}], "InvalidConfigurationRequest"),
    ([{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "bad name", "Values": ["x"]}}], "ValidationError"),
])
def test_a_rule_with_bad_conditions_is_refused_and_nothing_is_stored(elbv2, web, conditions, code):  # noqa: F811
    assert code_of(elbv2.create_rule, ListenerArn=web["listener"]["ListenerArn"], Priority=1,
                   Conditions=conditions, Actions=_forward(web["api"])) == code
    assert not ListenerRule.objects.exists()


def test_rule_errors_answer_as_elbv2_does(elbv2, web):  # noqa: F811
    listener = web["listener"]["ListenerArn"]
    path = [{"Field": "path-pattern", "Values": ["/api/*"]}]
    elbv2.create_rule(ListenerArn=listener, Priority=5, Conditions=path, Actions=_forward(web["api"]))
    assert code_of(elbv2.create_rule, ListenerArn=listener, Priority=5, Conditions=path,
                   Actions=_forward(web["api"])) == "PriorityInUse"
    assert code_of(elbv2.create_rule, ListenerArn=listener, Priority=50001, Conditions=path,
                   Actions=_forward(web["api"])) == "ValidationError"
    assert code_of(elbv2.create_rule, ListenerArn=listener, Priority=6, Conditions=path, Actions=[
        {"Type": "forward", "TargetGroupArn": web["api"]["TargetGroupArn"].replace(web["api"]["TargetGroupArn"][-4:], "ffff")}]
    ) == "TargetGroupNotFound"
    assert code_of(elbv2.create_rule, ListenerArn=listener, Priority=7, Conditions=path, Actions=_forward(web["api"]),
                   Transforms=[{"Type": "url-rewrite", "UrlRewriteConfig": {"Rewrites": [
                       {"Regex": "^/api/(.*)$", "Replace": "/$1"}]}}]) == "InvalidConfigurationRequest"
    default_arn = elbv2.describe_rules(ListenerArn=listener)["Rules"][-1]["RuleArn"]
    assert code_of(elbv2.delete_rule, RuleArn=default_arn) == "OperationNotPermitted"
    assert code_of(elbv2.set_rule_priorities, RulePriorities=[{"RuleArn": default_arn, "Priority": 3}]) == "OperationNotPermitted"
    assert code_of(elbv2.delete_rule, RuleArn=default_arn[:-4] + "abcd") == "RuleNotFound"
    assert code_of(elbv2.describe_rules) == "ValidationError"
    # The default rule's actions change through ModifyRule as through ModifyListener.
    elbv2.modify_rule(RuleArn=default_arn, Actions=_forward(web["api"]))
    assert elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"][0]["TargetGroupArn"] == \
        web["api"]["TargetGroupArn"]


def test_a_load_balancer_holds_at_most_100_rules(elbv2, web):  # noqa: F811
    listener = Listener.objects.get()
    ListenerRule.objects.bulk_create([ListenerRule(listener=listener, priority=p, rule_id=f"{p:016x}",
                                                   conditions=[{"Field": "path-pattern", "Values": [f"/{p}"]}],
                                                   actions=[]) for p in range(1, 101)])
    assert code_of(elbv2.create_rule, ListenerArn=web["listener"]["ListenerArn"], Priority=101,
                   Conditions=[{"Field": "path-pattern", "Values": ["/x"]}], Actions=_forward(web["api"])) == "TooManyRules"
    limits = elbv2.describe_account_limits()
    assert_model_shape("DescribeAccountLimits", limits, "elbv2")
    assert {"Name": "rules-per-application-load-balancer", "Max": "100"} in limits["Limits"]


def test_tags_are_added_described_and_removed_on_every_kind_of_resource(elbv2, web):  # noqa: F811
    rule = elbv2.create_rule(ListenerArn=web["listener"]["ListenerArn"], Priority=1, Actions=_forward(web["api"]),
                             Conditions=[{"Field": "path-pattern", "Values": ["/api/*"]}])["Rules"][0]
    arns = [web["lb"]["LoadBalancerArn"], web["web"]["TargetGroupArn"], web["listener"]["ListenerArn"], rule["RuleArn"]]
    elbv2.add_tags(ResourceArns=arns, Tags=[{"Key": "env", "Value": "lab"}, {"Key": "owner", "Value": "alice"}])
    described = elbv2.describe_tags(ResourceArns=arns)
    assert_model_shape("DescribeTags", described, "elbv2")
    for description in described["TagDescriptions"]:
        assert sorted((t["Key"], t["Value"]) for t in description["Tags"]) == [("env", "lab"), ("owner", "alice")]
    elbv2.add_tags(ResourceArns=arns[:1], Tags=[{"Key": "env", "Value": "prod"}])  # a key given again: new value
    elbv2.remove_tags(ResourceArns=arns, TagKeys=["owner"])
    described = elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]
    assert described[0]["Tags"] == [{"Key": "env", "Value": "prod"}]
    assert described[3]["Tags"] == [{"Key": "env", "Value": "lab"}]


def test_bad_tags_are_refused_and_change_nothing(elbv2, web):  # noqa: F811
    arn = web["lb"]["LoadBalancerArn"]
    assert code_of(elbv2.add_tags, ResourceArns=[arn], Tags=[{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]) \
        == "DuplicateTagKeys"
    assert code_of(elbv2.add_tags, ResourceArns=[arn], Tags=[{"Key": f"k{i}", "Value": ""} for i in range(51)]) \
        == "TooManyTags"
    assert code_of(elbv2.add_tags, ResourceArns=[arn], Tags=[{"Key": "aws:owner", "Value": "x"}]) == "ValidationError"
    # One unknown resource among the ARNs: nothing is tagged.
    missing = web["web"]["TargetGroupArn"][:-4] + "abcd"
    assert code_of(elbv2.add_tags, ResourceArns=[arn, missing], Tags=[{"Key": "env", "Value": "x"}]) == "TargetGroupNotFound"
    assert elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"] == []


def test_load_balancer_attributes_are_listed_and_deletion_protection_is_honoured(elbv2, web):  # noqa: F811
    arn = web["lb"]["LoadBalancerArn"]
    described = elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)
    assert_model_shape("DescribeLoadBalancerAttributes", described, "elbv2")
    values = {a["Key"]: a["Value"] for a in described["Attributes"]}
    assert values["deletion_protection.enabled"] == "false" and values["idle_timeout.timeout_seconds"] == "60"
    changed = elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[
        {"Key": "deletion_protection.enabled", "Value": "true"}, {"Key": "idle_timeout.timeout_seconds", "Value": "5"}])
    assert {a["Key"]: a["Value"] for a in changed["Attributes"]}["idle_timeout.timeout_seconds"] == "5"
    assert code_of(elbv2.delete_load_balancer, LoadBalancerArn=arn) == "OperationNotPermitted"
    assert LoadBalancer.objects.filter(name="web-lb").exists()
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[
        {"Key": "deletion_protection.enabled", "Value": "false"}])
    elbv2.delete_load_balancer(LoadBalancerArn=arn)
    assert not LoadBalancer.objects.filter(name="web-lb").exists()


@pytest.mark.parametrize("key, value, code", [
    ("access_logs.s3.enabled", "true", "InvalidConfigurationRequest"),  # no S3: refused, not ignored
    ("load_balancing.cross_zone.enabled", "false", "InvalidConfigurationRequest"),
    ("idle_timeout.timeout_seconds", "0", "ValidationError"),
    ("idle_timeout.timeout_seconds", "4001", "ValidationError"),
    ("routing.http.xff_header_processing.mode", "drop", "ValidationError"),
    ("no.such.attribute", "1", "InvalidConfigurationRequest"),
])
def test_an_attribute_the_lab_cannot_honour_is_refused_and_nothing_changes(elbv2, web, key, value, code):  # noqa: F811
    arn = web["lb"]["LoadBalancerArn"]
    before = elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    assert code_of(elbv2.modify_load_balancer_attributes, LoadBalancerArn=arn, Attributes=[
        {"Key": "deletion_protection.enabled", "Value": "true"}, {"Key": key, "Value": value}]) == code
    assert elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"] == before


def test_listener_attributes_take_response_headers_and_refuse_tls_ones(elbv2, web):  # noqa: F811
    arn = web["listener"]["ListenerArn"]
    described = elbv2.describe_listener_attributes(ListenerArn=arn)
    assert_model_shape("DescribeListenerAttributes", described, "elbv2")
    elbv2.modify_listener_attributes(ListenerArn=arn, Attributes=[
        {"Key": "routing.http.response.x_frame_options.header_value", "Value": "DENY"}])
    values = {a["Key"]: a["Value"] for a in elbv2.describe_listener_attributes(ListenerArn=arn)["Attributes"]}
    assert values["routing.http.response.x_frame_options.header_value"] == "DENY"
    assert code_of(elbv2.modify_listener_attributes, ListenerArn=arn, Attributes=[
        {"Key": "routing.http.response.x_frame_options.header_value", "Value": "DENY\r\nSet-Cookie: x=1"}]) \
        == "ValidationError"
    assert code_of(elbv2.modify_listener_attributes, ListenerArn=arn, Attributes=[
        {"Key": "routing.http.request.x_amzn_tls_version.header_name", "Value": "X-Tls"}]) == "InvalidConfigurationRequest"


def test_modify_listener_moves_its_port_and_refuses_https(elbv2, web):  # noqa: F811
    arn, port = web["listener"]["ListenerArn"], free_port()
    modified = elbv2.modify_listener(ListenerArn=arn, Port=port, DefaultActions=_forward(web["api"]))
    assert_model_shape("ModifyListener", modified, "elbv2")
    listener = elbv2.describe_listeners(ListenerArns=[arn])["Listeners"][0]
    assert listener["Port"] == port and listener["DefaultActions"][0]["TargetGroupArn"] == web["api"]["TargetGroupArn"]
    # The web target group no longer has a listener; the api one has.
    groups = {g["TargetGroupName"]: g["LoadBalancerArns"] for g in elbv2.describe_target_groups()["TargetGroups"]}
    assert groups == {"web-tg": [], "api-tg": [web["lb"]["LoadBalancerArn"]]}
    assert code_of(elbv2.modify_listener, ListenerArn=arn, Protocol="HTTPS") == "UnsupportedProtocol"
    assert code_of(elbv2.modify_listener, ListenerArn=arn, SslPolicy="ELBSecurityPolicy-2016-08") == "UnsupportedProtocol"
    assert elbv2.describe_listeners(ListenerArns=[arn])["Listeners"][0]["Port"] == port


def test_subnets_security_groups_and_the_address_type(elbv2, web):  # noqa: F811
    arn = web["lb"]["LoadBalancerArn"]
    zones = elbv2.set_subnets(LoadBalancerArn=arn, Subnets=["subnet-a", "subnet-b"])
    assert_model_shape("SetSubnets", zones, "elbv2")
    assert [z["SubnetId"] for z in zones["AvailabilityZones"]] == ["subnet-a", "subnet-b"]
    assert elbv2.set_security_groups(LoadBalancerArn=arn, SecurityGroups=["sg-1"])["SecurityGroupIds"] == ["sg-1"]
    lb = elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]
    assert lb["SecurityGroups"] == ["sg-1"] and len(lb["AvailabilityZones"]) == 2
    assert elbv2.set_ip_address_type(LoadBalancerArn=arn, IpAddressType="ipv4")["IpAddressType"] == "ipv4"
    assert code_of(elbv2.set_ip_address_type, LoadBalancerArn=arn, IpAddressType="dualstack") == \
        "InvalidConfigurationRequest"


def test_every_elbv2_operation_is_served_or_refused_with_its_reason(elbv2):  # noqa: F811
    names = set(botocore.session.get_session().get_service_model("elbv2").operation_names)
    assert names == set(operations.OPERATIONS) | set(operations.REFUSED)
    assert len(set(operations.OPERATIONS) & names) >= 30
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        elbv2.describe_ssl_policies()
    assert caught.value.response["Error"]["Code"] == "UnsupportedProtocol"
    assert "speak HTTP" in caught.value.response["Error"]["Message"]
