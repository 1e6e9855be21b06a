"""A legacy ReleaseManager client: Python's own xmlrpc.client against the
relman XML-RPC gateway. Prints one JSON object for the Go test to check.

usage: xmlrpc_client.py session|checks|from|rollout URL [ARGS...]
"""
import json
import sys
import time
import urllib.request
import xmlrpc.client

FINAL = {'INSTALL_COMPLETED', 'REJECTED', 'BUILD_FAILED', 'INSTALL_FAILED', 'CANCELLED',
         'ROLLBACK_COMPLETED', 'ROLLBACK_FAILED'}


def fault(f):
    return {'faultCode': f.faultCode, 'faultString': f.faultString}


def call(fn, *args):
    """Runs fn, returning its result or the fault it raised."""
    try:
        return {'result': fn(*args)}
    except xmlrpc.client.Fault as f:
        return {'fault': fault(f)}


def session(url):
    # The seed's session, as its README shows it.
    relman = xmlrpc.client.ServerProxy(url)
    credentials = dict(username='py-tester', password='hunter2')
    request_data = dict(project='shop', trunk=True, action='install', env='test')
    trans_id = relman.request_action(credentials, request_data)
    first = relman.query_transaction(trans_id)
    seen = [first]
    deadline = time.time() + 120
    status = first
    while status not in FINAL and time.time() < deadline:
        time.sleep(0.1)
        status = relman.query_transaction(credentials, trans_id)
        if status != seen[-1]:
            seen.append(status)
    history = relman.query_history(trans_id)
    return {
        'trans_id': trans_id,
        'first': first,
        'seen': seen,
        'final': status,
        'history_type': type(history).__name__,
        'history_item_types': sorted({type(h).__name__ for h in history}),
        'history_time_types': sorted({type(h['time']).__name__ for h in history}),
        'history': history,
        'history_with_credentials': len(relman.query_history(credentials, trans_id)),
    }


def raw_post(url, body):
    """POSTs a raw body with urllib; returns the HTTP status and the fault."""
    req = urllib.request.Request(url, data=body, headers={'Content-Type': 'text/xml'})
    with urllib.request.urlopen(req, timeout=30) as resp:
        data = resp.read()
        try:
            xmlrpc.client.loads(data)
            return {'status': resp.status, 'fault': None}
        except xmlrpc.client.Fault as f:
            return {'status': resp.status, 'fault': fault(f)}


def checks(url):
    relman = xmlrpc.client.ServerProxy(url)
    cred = dict(username='py-tester', password='hunter2')
    out = {}
    out['list_projects'] = relman.list_projects(cred)
    out['list_registrations'] = relman.list_registrations(cred)
    out['unknown_key'] = call(relman.request_action, cred,
                              dict(project='shop', trunk=True, action='install', env='test', brnch='x'))
    out['unknown_project'] = call(relman.request_action, cred,
                                  dict(project='no-such-project', action='install', env='test'))
    out['unknown_transaction'] = call(relman.query_transaction, 'no-such-transaction')
    out['unknown_transaction_history'] = call(relman.query_history, cred, 'no-such-transaction')
    out['registry_is_no_transaction'] = call(relman.query_transaction, 'relman-registry')
    out['wrong_type'] = call(relman.request_action, cred, 'shop')
    out['unknown_method'] = call(relman.no_such_method)
    out['list_methods'] = relman.system.listMethods()
    out['method_help'] = relman.system.methodHelp('request_action')
    out['method_signature'] = relman.system.methodSignature('query_transaction')
    rid = 'py-request-%d' % int(time.time() * 1000)
    data = dict(project='shop', action='build', trunk=True, request_id=rid)
    out['request_id'] = rid
    out['request_id_first'] = relman.request_action(cred, data)
    out['request_id_second'] = relman.request_action(cred, data)
    out['malformed'] = raw_post(url, b'<methodCall><methodName>list_projects</methodName><params><param>')
    out['not_xml'] = raw_post(url, b'this is not xml at all')
    depth = 200
    out['too_deep'] = raw_post(url, (
        '<?xml version="1.0"?><methodCall><methodName>list_projects</methodName><params><param>'
        + '<value><array><data>' * depth + '</data></array></value>' * depth
        + '</param></params></methodCall>').encode())
    out['too_large'] = raw_post(url, (
        '<?xml version="1.0"?><methodCall><methodName>list_projects</methodName><params><param><value><string>'
        + 'x' * (2 << 20) + '</string></value></param></params></methodCall>').encode())
    # Every Python type the marshaller knows, through a real method: the
    # fault lists each key, so the call is decoded whole.
    loose = xmlrpc.client.ServerProxy(url, allow_none=True)
    out['all_types'] = call(loose.request_action, dict(username='py-tester', n=-1, f=1.5, b=True,
                                                      none=None, when=xmlrpc.client.DateTime(0),
                                                      raw=xmlrpc.client.Binary(b'\x00\x01'), arr=[1, 'a', [None]]),
                            dict(project='shop', action='install', env='test', weird=[{'a': 1}]))
    out['after'] = relman.system.listMethods()
    return out


def wait(relman, trans_id, final):
    deadline = time.time() + 120
    status = relman.query_transaction(trans_id)
    while status not in final and time.time() < deadline:
        time.sleep(0.1)
        status = relman.query_transaction(trans_id)
    return status


def install_from(url):
    # Build once, then install that build without rebuilding.
    relman = xmlrpc.client.ServerProxy(url)
    credentials = dict(username='py-tester')
    build = relman.request_action(credentials, dict(project='shop', action='build'))
    built = wait(relman, build, FINAL | {'BUILD_COMPLETED'})
    install = relman.request_action(credentials, dict(project='shop', action='install', env='test', **{'from': build}))
    installed = wait(relman, install, FINAL)
    bad = call(relman.request_action, credentials, dict(project='shop', action='build', **{'from': build}))
    return {'build': build, 'built': built, 'install': install, 'installed': installed, 'bad': bad}


def rollout(url, project, env):
    # where, rollback, and several calls in one request, as Python's own
    # MultiCall sends them.
    relman = xmlrpc.client.ServerProxy(url)
    cred = dict(username='py-tester', password='hunter2')
    data = dict(project=project, env=env)
    before = relman.where(cred, data)
    rb = relman.rollback(cred, data)
    status = wait(relman, rb, FINAL)
    after = relman.where(cred, data)
    history = relman.query_history(cred, rb)
    mc = xmlrpc.client.MultiCall(relman)
    mc.query_transaction(cred, rb)
    mc.list_projects(cred)
    mc.where(cred, data)
    mc.no_such_method()
    mc.rollback(cred, dict(project=project, env='no-such-env'))
    answers = []
    results = mc()
    for i in range(5):
        try:
            answers.append({'result': results[i]})
        except xmlrpc.client.Fault as f:
            answers.append({'fault': fault(f)})
    return {
        'before': before,
        'rollback': rb,
        'status': status,
        'after': after,
        'history_events': [h['event'] for h in history],
        'installed_at_types': sorted({type(r['installed_at']).__name__ for r in before if 'installed_at' in r}),
        'multicall': answers,
        'unknown_project': call(relman.where, cred, dict(project='no-such-project', env=env)),
        'rollback_unknown_key': call(relman.rollback, cred, dict(project=project, env=env, branch='x')),
    }


def main():
    mode, url, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    result = {'session': session, 'checks': checks, 'from': install_from, 'rollout': rollout}[mode](url, *args)
    json.dump(result, sys.stdout, default=str)


if __name__ == '__main__':
    main()
